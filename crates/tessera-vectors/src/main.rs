//! `tessera-vectors`: generates and checks `spec/vectors`.
//!
//! ```text
//! tessera-vectors generate [DIR]            write every case (default: spec/vectors)
//! tessera-vectors check [DIR]               run every case in DIR against tessera-core
//! tessera-vectors list                      print the case names
//! tessera-vectors test-list                 print the runner's macro lines
//! tessera-vectors verify-external FILE [DIR]
//!                                           verify another implementation's signatures
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use tessera_vectors::{
    all_cases, case_dirs, check, default_dir, load_case, verify_external, write_cases,
    ExternalSignature,
};

fn dir_arg(arg: Option<String>) -> PathBuf {
    arg.map_or_else(default_dir, PathBuf::from)
}

fn run() -> Result<ExitCode, String> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    match command.as_str() {
        "generate" => {
            let dir = dir_arg(args.next());
            let dir = dir.canonicalize().unwrap_or(dir);
            let cases = all_cases().map_err(|e| e.to_string())?;
            write_cases(&dir, &cases).map_err(|e| format!("writing {}: {e}", dir.display()))?;
            let count = |f: fn(&tessera_vectors::Expected) -> bool| {
                cases.iter().filter(|c| f(&c.expected)).count()
            };
            use tessera_vectors::Expected as X;
            println!(
                "wrote {} cases ({} positive, {} negative, {} accepted as received, {} refused by the signer) to {}",
                cases.len(),
                count(|e| matches!(e, X::Signed(_))),
                count(|e| matches!(e, X::Rejected(_))),
                count(|e| matches!(e, X::Accepted(_))),
                count(|e| matches!(e, X::Refused(_))),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        "check" => {
            let dir = dir_arg(args.next());
            let names = case_dirs(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
            let mut failed = 0;
            for name in &names {
                let result = load_case(&dir, name)
                    .map_err(|e| e.to_string())
                    .and_then(|case| check(&case).map_err(|e| e.to_string()));
                if let Err(e) = result {
                    failed += 1;
                    println!("FAIL {e}");
                }
            }
            println!("vectors: {} passed, {failed} failed", names.len() - failed);
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        "list" | "test-list" => {
            let cases = all_cases().map_err(|e| e.to_string())?;
            for case in cases {
                if command == "list" {
                    println!("{}", case.name);
                } else {
                    println!("    {} => \"{}\",", case.name.replace('-', "_"), case.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        "verify-external" => {
            let file = args.next().ok_or("verify-external needs a FILE")?;
            let dir = dir_arg(args.next());
            let text = std::fs::read_to_string(&file).map_err(|e| format!("reading {file}: {e}"))?;
            let signatures: Vec<ExternalSignature> =
                serde_json::from_str(&text).map_err(|e| format!("parsing {file}: {e}"))?;
            let mut failed = 0;
            for ext in &signatures {
                let result = load_case(&dir, &ext.name)
                    .map_err(|e| e.to_string())
                    .and_then(|case| verify_external(&case, ext).map_err(|e| e.to_string()));
                match result {
                    Ok(()) => println!("ok   {}", ext.name),
                    Err(e) => {
                        failed += 1;
                        println!("FAIL {e}");
                    }
                }
            }
            println!("library-signed: {} passed, {failed} failed", signatures.len() - failed);
            Ok(if failed == 0 && !signatures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        _ => Err(format!(
            "usage: tessera-vectors generate [DIR] | check [DIR] | list | test-list | verify-external FILE [DIR] (got {command:?})"
        )),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tessera-vectors: {e}");
            ExitCode::FAILURE
        }
    }
}
