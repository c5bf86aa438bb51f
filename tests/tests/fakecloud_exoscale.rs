//! The fake's Exoscale dialect checked against shared/docs/clouds.md (its Exoscale section). So
//! far the signature check only: the two test vectors, and each way a request is refused.

use cloudha_tests::fakecloud::exoscale::{parse_authorization, signature, verify};

const KEY: &str = "EXOxxxxxxxxxxxxxxxxxxxxxxxx";
const EXPIRES: u64 = 3376684800;

fn secret() -> String {
    "X".repeat(43)
}

fn secret_of(key: &str) -> Option<String> {
    (key == KEY).then(secret)
}

const VECTOR_1: &str = "EXO2-HMAC-SHA256 credential=EXOxxxxxxxxxxxxxxxxxxxxxxxx,\
                        expires=3376684800,signature=Ntbq/p0HVmA3Zg1HHY+Lq1vjFGi7HeMrrgXDS5jRNlY=";
const VECTOR_2: &str = "EXO2-HMAC-SHA256 credential=EXOxxxxxxxxxxxxxxxxxxxxxxxx,\
                        signed-query-args=k1;k2,expires=3376684800,\
                        signature=iqOBz13+44L5j0uJclE8hmUhQQcvtCSoPEOXYK6liqY=";

#[test]
fn the_test_vectors_are_signed_and_accepted() {
    assert_eq!(
        signature(&secret(), "GET", "/v2/zone", b"", &[], EXPIRES).unwrap(),
        "Ntbq/p0HVmA3Zg1HHY+Lq1vjFGi7HeMrrgXDS5jRNlY="
    );
    let args = ["k1".to_string(), "k2".to_string()];
    assert_eq!(
        signature(
            &secret(),
            "GET",
            "/v2/zone?k1=v1&k2=v2",
            b"",
            &args,
            EXPIRES
        )
        .unwrap(),
        "iqOBz13+44L5j0uJclE8hmUhQQcvtCSoPEOXYK6liqY="
    );
    let now = EXPIRES - 600;
    assert_eq!(
        verify(Some(VECTOR_1), "GET", "/v2/zone", b"", now, secret_of).unwrap(),
        KEY
    );
    assert_eq!(
        verify(
            Some(VECTOR_2),
            "GET",
            "/v2/zone?k1=v1&k2=v2",
            b"",
            now,
            secret_of
        )
        .unwrap(),
        KEY
    );
    let parsed = parse_authorization(VECTOR_2).unwrap();
    assert_eq!(parsed.signed_query_args, ["k1", "k2"]);
    assert_eq!(parsed.expires, EXPIRES);
}

#[test]
fn every_wrong_request_is_refused_with_401_or_403() {
    let now = EXPIRES - 600;
    let refused = |auth: Option<&str>, method: &str, target: &str, body: &[u8], now: u64| {
        let r = verify(auth, method, target, body, now, secret_of).unwrap_err();
        assert!([401, 403].contains(&r.status), "{r:?}");
        assert!(r.body()["message"].is_string());
        r.status
    };
    // No header, another scheme, a malformed one.
    assert_eq!(refused(None, "GET", "/v2/zone", b"", now), 401);
    assert_eq!(refused(Some("Bearer x"), "GET", "/v2/zone", b"", now), 401);
    assert_eq!(
        refused(
            Some("EXO2-HMAC-SHA256 credential=EXOx"),
            "GET",
            "/v2/zone",
            b"",
            now
        ),
        401
    );
    // Expired.
    assert_eq!(
        refused(Some(VECTOR_1), "GET", "/v2/zone", b"", EXPIRES + 1),
        401
    );
    // Another method, path, body or query than signed.
    assert_eq!(refused(Some(VECTOR_1), "PUT", "/v2/zone", b"", now), 403);
    assert_eq!(refused(Some(VECTOR_1), "GET", "/v2/zonf", b"", now), 403);
    assert_eq!(refused(Some(VECTOR_1), "GET", "/v2/zone", b"{}", now), 403);
    assert_eq!(
        refused(Some(VECTOR_2), "GET", "/v2/zone?k1=v1&k2=v3", b"", now),
        403
    );
    // A wrong secret, an unknown key.
    let wrong = signature(&"Y".repeat(43), "GET", "/v2/zone", b"", &[], EXPIRES).unwrap();
    let header = format!("EXO2-HMAC-SHA256 credential={KEY},expires={EXPIRES},signature={wrong}");
    assert_eq!(refused(Some(&header), "GET", "/v2/zone", b"", now), 403);
    let other = VECTOR_1.replace(KEY, "EXOyyyyyyyyyyyyyyyyyyyyyyyy");
    assert_eq!(refused(Some(&other), "GET", "/v2/zone", b"", now), 403);
}

#[test]
fn the_colon_of_an_action_is_signed_as_written() {
    let target = "/v2/elastic-ip/6c0ad3d7-0ba5-4c87-a6d4-1a1dd7b2a9a1:attach";
    let body = br#"{"instance":{"id":"0b3f5e62-7b64-4c7c-9a38-2d0e4c1f7a10"}}"#;
    let sig = signature(&secret(), "PUT", target, body, &[], EXPIRES).unwrap();
    let header = format!("EXO2-HMAC-SHA256 credential={KEY},expires={EXPIRES},signature={sig}");
    assert!(verify(Some(&header), "PUT", target, body, EXPIRES, secret_of).is_ok());
    let escaped = target.replace(':', "%3A");
    assert!(verify(Some(&header), "PUT", &escaped, body, EXPIRES, secret_of).is_err());
}
