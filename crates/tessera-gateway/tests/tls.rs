//! TLS termination with rustls: certificate and key PEM files in the
//! configuration; a signed request over TLS for the https authority.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::*;

#[test]
fn signed_requests_pass_over_tls() {
    let dir = temp_dir("tls");
    // A throwaway CA and a leaf certificate for localhost.
    tls_files(&dir);
    let upstream = Upstream::start(&dir);
    let alice = Key::random("alice-phone");
    keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let gateway = Gateway::start_tls(&dir, &upstream);

    let connection = client_to_localhost(&[&dir.join("ca.pem")]);
    let socket = TcpStream::connect(gateway.addr).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let authority = format!("localhost:{}", gateway.addr.port());
    let mut request = http::Request::get(format!("https://{authority}/v1/tls"))
        .body(Vec::new())
        .unwrap();
    alice.signer().sign_request(&mut request).unwrap();
    tls.write_all(&serialize(&request, &authority)).unwrap();
    let mut received = Vec::new();
    // The server may close without close_notify after `Connection: close`.
    let _ = tls.read_to_end(&mut received);
    let reply = parse(&received).expect("a response over TLS");
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.echoed("x-forwarded-proto"), ["https"]);
    assert_eq!(reply.echoed("tessera-owner"), ["alice"]);
    assert_eq!(upstream.paths(), ["/v1/tls"]);
}

/// A client connection to `localhost` that trusts the CAs in `cas`.
fn client_to_localhost(cas: &[&Path]) -> rustls::ClientConnection {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    rustls::ClientConnection::new(Arc::new(client), ServerName::try_from("localhost").unwrap())
        .unwrap()
}

/// The leaf certificate the gateway at `addr` presents now, trusting the
/// CAs in `cas`.
fn served_certificate(addr: SocketAddr, cas: &[&Path]) -> CertificateDer<'static> {
    let mut connection = client_to_localhost(cas);
    let mut socket = TcpStream::connect(addr).unwrap();
    while connection.is_handshaking() {
        connection.complete_io(&mut socket).unwrap();
    }
    connection.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn first_certificate(pem: &Path) -> CertificateDer<'static> {
    CertificateDer::pem_file_iter(pem)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

/// A renewal hook replaces the certificate and key files and sends SIGHUP:
/// new connections get the new pair, with no restart. Files that cannot be
/// used are refused by the reload (the pair in service stays) and by
/// `--check`, with exit status 2.
#[test]
fn sighup_serves_a_renewed_certificate() {
    let dir = temp_dir("tls-renew");
    tls_files(&dir);
    let renewed = dir.join("renewed");
    std::fs::create_dir_all(&renewed).unwrap();
    tls_files(&renewed);
    let upstream = Upstream::start(&dir);
    let alice = Key::random("alice-renew");
    keys_file(&dir, &[(&alice, "alice", &["read"], false)]);
    let gateway = Gateway::start_tls(&dir, &upstream);
    let cas = [dir.join("ca.pem"), renewed.join("ca.pem")];
    let cas: Vec<&Path> = cas.iter().map(|p| p.as_path()).collect();
    let before = first_certificate(&dir.join("cert.pem"));
    assert_eq!(served_certificate(gateway.addr, &cas), before);

    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(renewed.join(file), dir.join(file)).unwrap();
    }
    gateway.signal("HUP");
    gateway.await_log("configuration reloaded", 1);
    let after = first_certificate(&renewed.join("cert.pem"));
    assert_ne!(before, after);
    assert_eq!(served_certificate(gateway.addr, &cas), after);

    // A key that is not the certificate's: refused, and the pair in service stays.
    std::fs::copy(dir.join("renewed").join("ca.key"), dir.join("key.pem")).unwrap();
    gateway.signal("HUP");
    gateway.await_log("configuration NOT reloaded", 1);
    assert!(
        gateway.stderr().contains("do not fit together"),
        "{}",
        gateway.stderr()
    );
    assert_eq!(served_certificate(gateway.addr, &cas), after);
    let out = Command::new(BIN)
        .arg("--check")
        .arg(dir.join("gateway.toml"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("do not fit together"), "{stderr}");
}
