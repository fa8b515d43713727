//! WeCom callback encryption (the scheme of the official `WXBizMsgCrypt` SDKs):
//! signature `sha1(sort([token, timestamp, nonce, encrypt]).join(""))` as lowercase hex;
//! AES-256-CBC with key `base64(EncodingAESKey + "=")` and IV = the key's first 16 bytes;
//! PKCS#7 padding to 32 bytes; plaintext `random(16) ‖ len(4, big-endian, bytes) ‖ msg ‖ receive id`.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

type Decryptor = cbc::Decryptor<aes::Aes256>;
type Encryptor = cbc::Encryptor<aes::Aes256>;

const BLOCK: usize = 32;

/// The SDK error codes, kept so logs match WeCom's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("-40001: signature mismatch")]
    Signature,
    #[error("-40002: body is not a WeCom callback")]
    Parse,
    #[error("-40004: EncodingAESKey is not 43 characters of base64")]
    AesKey,
    #[error("-40005: receive id does not match this instance's corp id")]
    ReceiveId,
    #[error("-40007: decryption failed")]
    Decrypt,
    #[error("-40008: plaintext is malformed")]
    Buffer,
}

#[derive(Clone)]
pub struct WecomCrypto {
    token: String,
    key: [u8; 32],
    receive_id: String,
}

impl std::fmt::Debug for WecomCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WecomCrypto")
            .field("receive_id", &self.receive_id)
            .finish_non_exhaustive()
    }
}

impl WecomCrypto {
    pub fn new(token: &str, encoding_aes_key: &str, receive_id: &str) -> Result<Self, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::AesKey);
        }
        // WeCom keys do not always have zero trailing bits, which strict base64 decoders refuse.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let bytes = lenient
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CryptoError::AesKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::AesKey)?;
        Ok(Self {
            token: token.to_owned(),
            key,
            receive_id: receive_id.to_owned(),
        })
    }

    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypt];
        parts.sort_unstable();
        Sha1::digest(parts.concat().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn check_signature(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        let expected = self.signature(timestamp, nonce, encrypt);
        if bool::from(
            expected
                .as_bytes()
                .ct_eq(signature.to_ascii_lowercase().as_bytes()),
        ) {
            Ok(())
        } else {
            Err(CryptoError::Signature)
        }
    }

    /// URL verification: checks the signature and returns the plaintext to answer with.
    pub fn verify_url(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        echostr: &str,
    ) -> Result<String, CryptoError> {
        self.check_signature(signature, timestamp, nonce, echostr)?;
        self.decrypt(echostr)
    }

    /// An event: reads `<Encrypt>` from the XML body, checks the signature, decrypts.
    pub fn decrypt_message(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        body: &str,
    ) -> Result<String, CryptoError> {
        let encrypt = xml_field(body, "Encrypt").ok_or(CryptoError::Parse)?;
        self.check_signature(signature, timestamp, nonce, &encrypt)?;
        self.decrypt(&encrypt)
    }

    pub fn decrypt(&self, encrypt: &str) -> Result<String, CryptoError> {
        let mut data = STANDARD
            .decode(encrypt.trim())
            .map_err(|_| CryptoError::Decrypt)?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(CryptoError::Decrypt);
        }
        let iv: [u8; 16] = self.key[..16].try_into().map_err(|_| CryptoError::AesKey)?;
        let plain = Decryptor::new(&self.key.into(), &iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .map_err(|_| CryptoError::Decrypt)?;
        let pad = usize::from(*plain.last().ok_or(CryptoError::Buffer)?);
        if !(1..=BLOCK).contains(&pad)
            || pad > plain.len()
            || plain[plain.len() - pad..]
                .iter()
                .any(|b| usize::from(*b) != pad)
        {
            return Err(CryptoError::Decrypt);
        }
        let content = &plain[..plain.len() - pad];
        if content.len() < 20 {
            return Err(CryptoError::Buffer);
        }
        let len = u32::from_be_bytes([content[16], content[17], content[18], content[19]]) as usize;
        let message = content.get(20..20 + len).ok_or(CryptoError::Buffer)?;
        let receive_id = &content[20 + len..];
        if receive_id != self.receive_id.as_bytes() {
            return Err(CryptoError::ReceiveId);
        }
        String::from_utf8(message.to_vec()).map_err(|_| CryptoError::Buffer)
    }

    /// Encrypts with the given 16 random bytes (injectable so tests can reproduce SDK output).
    pub fn encrypt_with(&self, message: &str, random: [u8; 16]) -> String {
        let mut plain = Vec::with_capacity(message.len() + 64);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(
            &u32::try_from(message.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(self.receive_id.as_bytes());
        let pad = BLOCK - plain.len() % BLOCK;
        plain.extend(std::iter::repeat_n(u8::try_from(pad).unwrap_or(32), pad));
        let iv: [u8; 16] = self.key[..16].try_into().unwrap_or([0; 16]);
        let len = plain.len();
        let cipher = Encryptor::new(&self.key.into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        STANDARD.encode(cipher)
    }

    /// A passive reply in the SDKs' XML envelope.
    pub fn reply(&self, message: &str, timestamp: &str, nonce: &str) -> String {
        let random: [u8; 16] = rand::random();
        let random = random.map(|b| b"0123456789abcdefghijklmnopqrstuvwxyz"[usize::from(b) % 36]);
        let encrypt = self.encrypt_with(message, random);
        let signature = self.signature(timestamp, nonce, &encrypt);
        format!(
            "<xml>\n<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n<MsgSignature><![CDATA[{signature}]]></MsgSignature>\n<TimeStamp>{timestamp}</TimeStamp>\n<Nonce><![CDATA[{nonce}]]></Nonce>\n</xml>"
        )
    }
}

/// The text of `<tag>…</tag>` in WeCom's flat XML, CDATA unwrapped.
pub fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let inner = xml[start..end].trim();
    Some(
        inner
            .strip_prefix("<![CDATA[")
            .and_then(|s| s.strip_suffix("]]>"))
            .unwrap_or(inner)
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sample values of the official SDKs (sbzhu/weworkapi_golang sample.go, weworkapi_php
    // callback/Sample.php, weworkapi_python callback/Sample.py).
    const A_TOKEN: &str = "QDG6eK";
    const A_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const A_CORP: &str = "wx5823bf96d3bd56c7";
    const A_ECHOSTR: &str =
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
    const A_BODY: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>";
    const A_PLAIN: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>";

    fn a() -> WecomCrypto {
        WecomCrypto::new(A_TOKEN, A_KEY, A_CORP).unwrap()
    }

    #[test]
    fn official_url_verification() {
        let plain = a()
            .verify_url(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
                "1409659589",
                "263014780",
                A_ECHOSTR,
            )
            .unwrap();
        assert_eq!(plain, "1616140317555161061");
    }

    #[test]
    fn official_message_decryption() {
        let plain = a()
            .decrypt_message(
                "477715d11cdb4164915debcba66cb864d751f3e6",
                "1409659813",
                "1372623149",
                A_BODY,
            )
            .unwrap();
        assert_eq!(plain, A_PLAIN);
        assert_eq!(xml_field(&plain, "Content").as_deref(), Some("hello"));
        assert_eq!(
            xml_field(&plain, "MsgId").as_deref(),
            Some("4561255354251345929")
        );
    }

    #[test]
    fn encrypting_with_the_sdk_random_bytes_reproduces_the_sdk_ciphertext() {
        let encrypt = xml_field(A_BODY, "Encrypt").unwrap();
        assert_eq!(a().encrypt_with(A_PLAIN, *b"0960688932c47ef1"), encrypt);
        assert_eq!(
            a().encrypt_with("1616140317555161061", *b"c41b64491c2468d0"),
            A_ECHOSTR
        );
    }

    #[test]
    fn python_sdk_vector_with_multibyte_content() {
        let b = WecomCrypto::new(
            "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
            "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
            "ww1436e0e65a779aee",
        )
        .unwrap();
        let echo = b.verify_url("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683", "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==").unwrap();
        assert_eq!(echo, "1288432023552776189");
        let body = "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>";
        let plain = b
            .decrypt_message(
                "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
                "1476422779",
                "1597212914",
                body,
            )
            .unwrap();
        assert_eq!(xml_field(&plain, "Content").as_deref(), Some("你好"));
    }

    #[test]
    fn refuses_bad_signatures_keys_and_receive_ids() {
        assert_eq!(
            a().verify_url(
                "0000000000000000000000000000000000000000",
                "1409659589",
                "263014780",
                A_ECHOSTR
            ),
            Err(CryptoError::Signature)
        );
        assert_eq!(
            a().verify_url(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
                "1409659590",
                "263014780",
                A_ECHOSTR
            ),
            Err(CryptoError::Signature)
        );
        let other_corp = WecomCrypto::new(A_TOKEN, A_KEY, "wwsomeoneelse").unwrap();
        assert_eq!(other_corp.decrypt(A_ECHOSTR), Err(CryptoError::ReceiveId));
        assert_eq!(
            WecomCrypto::new(A_TOKEN, "short", A_CORP).unwrap_err(),
            CryptoError::AesKey
        );
        assert_eq!(a().decrypt("bm90IGJsb2Nrcw=="), Err(CryptoError::Decrypt));
        assert_eq!(
            a().decrypt_message("x", "1", "2", "<xml></xml>"),
            Err(CryptoError::Parse)
        );
    }

    #[test]
    fn replies_round_trip() {
        let reply = a().reply(
            "<xml><Content>ok</Content></xml>",
            "1409659813",
            "1372623149",
        );
        let encrypt = xml_field(&reply, "Encrypt").unwrap();
        let signature = xml_field(&reply, "MsgSignature").unwrap();
        assert_eq!(
            a().verify_url(&signature, "1409659813", "1372623149", &encrypt)
                .unwrap(),
            "<xml><Content>ok</Content></xml>"
        );
    }
}
