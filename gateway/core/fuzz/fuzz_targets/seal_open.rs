//! `seal::KeyRing::open` on arbitrary sealed values, for every purpose, plus a
//! seal → open round trip of arbitrary plaintext that must survive intact and
//! must not open under another purpose or after a one-byte change.
#![no_main]

use edgeauth_core::seal::{MAX_SEALED_LEN, Purpose};
use edgeauth_core_fuzz::{SETTINGS, seeded_rng};
use libfuzzer_sys::fuzz_target;

const PURPOSES: [Purpose; 3] = [Purpose::Session, Purpose::Login, Purpose::Logout];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let ring = &SETTINGS.session_keys;
    let purpose = PURPOSES[usize::from(mode % 3)];
    if mode & 0x80 == 0 {
        // Hostile cookie value: opening must fail (nobody knows the key).
        let text = String::from_utf8_lossy(rest);
        if ring.open(purpose, &text).is_ok() {
            panic!("forged value opened: {text:?}");
        }
        return;
    }
    // Round trip.
    let mut rng = seeded_rng(u64::from(mode));
    let sealed = ring.seal(purpose, rest, &mut rng);
    if sealed.len() > MAX_SEALED_LEN {
        assert!(ring.open(purpose, &sealed).is_err());
        return;
    }
    assert_eq!(ring.open(purpose, &sealed).as_deref(), Ok(rest));
    for other in PURPOSES.into_iter().filter(|p| *p != purpose) {
        assert!(ring.open(other, &sealed).is_err(), "purpose not bound");
    }
    let mut tampered = sealed.clone().into_bytes();
    let i = usize::from(mode) % tampered.len();
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(
        ring.open(purpose, &tampered).is_err(),
        "tampered value opened"
    );
});
