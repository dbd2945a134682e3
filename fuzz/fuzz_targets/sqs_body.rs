//! SQS message bodies (`vaia_core::messages::parse_body`, `gate_job::parse_job`): the
//! first byte picks the message type; a body that parses serialises to one that parses
//! to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use vaia_core::messages::{parse_body, AdvanceMessage, GateJob, ObjectCreated, RegistryJob};
use vaia_core::ports::ReceivedMessage;

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + Debug>(body: &str) {
    if let Ok(m) = parse_body::<T>("fuzz", "m-1", body) {
        let again = serde_json::to_string(&m).expect("a parsed message serialises");
        let back: T = parse_body("fuzz", "m-1", &again)
            .unwrap_or_else(|e| panic!("a serialised message does not parse: {e}"));
        assert_eq!(m, back, "message round trip");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let body = vaia_fuzz::text(rest);
    match which % 5 {
        0 => round_trip::<AdvanceMessage>(&body),
        1 => round_trip::<GateJob>(&body),
        2 => round_trip::<RegistryJob>(&body),
        3 => round_trip::<ObjectCreated>(&body),
        _ => {
            let message = ReceivedMessage {
                id: "m-1".into(),
                receipt: "r-1".into(),
                body: body.into_owned(),
                receive_count: 1,
            };
            let _ = vaia_core::gate_job::parse_job("fuzz", &message);
        }
    }
});
