//! WeCom-style callback delivery: the XML event encrypted and signed as the official
//! `WXBizMsgCrypt` SDKs do (AES-256-CBC with the EncodingAESKey, IV its first 16 bytes, PKCS#7
//! to 32 bytes; `random(16) ‖ len(4, BE) ‖ message ‖ corp id`; `sha1(sorted token, timestamp,
//! nonce, encrypt)`).

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha1::{Digest, Sha1};

use crate::{kf::KfCallback, signing};

type Encryptor = cbc::Encryptor<aes::Aes256>;

fn key_of(aes_key: &str) -> Result<[u8; 32], String> {
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    lenient
        .decode(format!("{aes_key}="))
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| "the EncodingAESKey is not 43 characters of base64".to_owned())
}

pub fn encrypt(aes_key: &str, corp_id: &str, message: &str) -> Result<String, String> {
    let key = key_of(aes_key)?;
    let mut plain: Vec<u8> = rand::random::<[u8; 16]>()
        .map(|b| b"abcdefghijklmnopqrstuvwxyz0123456789"[usize::from(b) % 36])
        .to_vec();
    plain.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    plain.extend_from_slice(message.as_bytes());
    plain.extend_from_slice(corp_id.as_bytes());
    let pad = 32 - plain.len() % 32;
    plain.extend(std::iter::repeat_n(u8::try_from(pad).unwrap_or(32), pad));
    let len = plain.len();
    let iv: [u8; 16] = key[..16].try_into().map_err(|_| "bad key".to_owned())?;
    let cipher = Encryptor::new(&key.into(), &iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut plain, len)
        .map_err(|_| "encryption failed".to_owned())?
        .to_vec();
    Ok(STANDARD.encode(cipher))
}

pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypt];
    parts.sort_unstable();
    Sha1::digest(parts.concat().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Delivers `plain` to the callback URL; the platform's HTTP status.
pub async fn post(callback: &KfCallback, corp_id: &str, plain: &str) -> Result<u16, String> {
    let encrypted = encrypt(&callback.aes_key, corp_id, plain)?;
    let timestamp = signing::now().to_string();
    let nonce = format!("{}", rand::random::<u32>());
    let sig = signature(&callback.token, &timestamp, &nonce, &encrypted);
    let body = format!(
        "<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
    );
    let separator = if callback.url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{separator}msg_signature={sig}&timestamp={timestamp}&nonce={nonce}",
        callback.url
    );
    reqwest::Client::new()
        .post(url)
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}
