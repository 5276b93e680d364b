//! TLS termination with rustls: certificate and key PEM files in the
//! configuration; a signed request over TLS for the https authority.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
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

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connection =
        rustls::ClientConnection::new(Arc::new(client), ServerName::try_from("localhost").unwrap())
            .unwrap();
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
