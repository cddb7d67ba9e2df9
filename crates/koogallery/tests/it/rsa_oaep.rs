//! RSA-OAEP `clientSecret` decryption against ciphertexts made independently by `openssl
//! pkeyutl` (see fixtures/README.md): each parameter set is recognised and reported.

use koogallery::crypto::rsa_oaep::{
    OaepParams, decrypt_client_secret, encrypt_client_secret, private_key_from_pem, public_key_pem,
};
use koogallery::error::CryptoError;

const SECRET: &str = "kit-client-secret-Example-0001";

fn key() -> rsa::RsaPrivateKey {
    private_key_from_pem(include_str!("../fixtures/rsa3072_test_key.pem")).unwrap()
}

#[test]
fn openssl_ciphertexts_decrypt_with_the_right_parameter_set() {
    let key = key();
    for (ct, params) in [
        (
            include_str!("../fixtures/oaep_sha256_mgf1_sha256.b64"),
            OaepParams::Sha256Mgf1Sha256,
        ),
        (
            include_str!("../fixtures/oaep_sha256_mgf1_sha1.b64"),
            OaepParams::Sha256Mgf1Sha1,
        ),
        (
            include_str!("../fixtures/oaep_sha1_mgf1_sha1.b64"),
            OaepParams::Sha1Mgf1Sha1,
        ),
    ] {
        assert_eq!(
            decrypt_client_secret(&key, ct),
            Ok((SECRET.to_owned(), params)),
            "{}",
            params.name()
        );
    }
}

#[test]
fn other_paddings_and_garbage_are_refused() {
    let key = key();
    assert_eq!(
        decrypt_client_secret(&key, include_str!("../fixtures/pkcs1v15.b64")),
        Err(CryptoError::OaepNoMatch)
    );
    assert_eq!(
        decrypt_client_secret(&key, "%%%"),
        Err(CryptoError::BadBase64)
    );
    assert_eq!(
        decrypt_client_secret(&key, "AAAA"),
        Err(CryptoError::OaepNoMatch)
    );
    assert!(matches!(
        private_key_from_pem("not a key"),
        Err(CryptoError::RsaKey(_))
    ));
}

#[test]
fn our_encryption_round_trips_and_public_key_matches_openssl() {
    let key = key();
    let public = rsa::RsaPublicKey::from(&key);
    for params in OaepParams::ALL {
        let ct = encrypt_client_secret(&public, SECRET, params).unwrap();
        assert_eq!(
            decrypt_client_secret(&key, &ct),
            Ok((SECRET.to_owned(), params))
        );
    }
    assert_eq!(
        public_key_pem(&key).unwrap().trim(),
        include_str!("../fixtures/rsa3072_test_pub.pem").trim()
    );
}
