//! The topic rules of `docs/protocol.md` as pure functions, so the edge and the tests share one
//! truth.
//!
//! A device may publish only to `tw/d/{itself}/up/<one level>` and subscribe only inside
//! `tw/d/{itself}/down/#` or `tw/c/{its cluster}/#`. Everything else is refused: other
//! devices' or clusters' topics, `$`-topics, `$share/...`, and any wildcard that would widen
//! the scope beyond those two subtrees.

/// The filter the gateway subscribes to on the router to receive every device's uplink.
pub const UPLINK_FILTER: &str = "tw/d/+/up/#";

/// The longest device or cluster id (the CONNECT client id travels in every topic, so it is
/// kept short).
pub const MAX_ID_LEN: usize = 64;

/// `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`: the shape of device ids and cluster ids.
///
/// Written by hand rather than with a regex crate: it is one loop, and it keeps `+ # / $` and
/// NUL out of topic levels, which is what the ACL relies on.
pub fn is_valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    match bytes.first() {
        Some(first) if first.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    bytes.len() <= MAX_ID_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// Same rule as [`is_valid_id`], named for readability where a device id is meant.
pub fn is_valid_device_id(id: &str) -> bool {
    is_valid_id(id)
}

/// The uplink topic of a device, e.g. `tw/d/dev1/up/press`.
pub fn uplink_topic(device: &str, kind: &str) -> String {
    format!("tw/d/{device}/up/{kind}")
}

/// The downlink topic of a device, e.g. `tw/d/dev1/down/ack`.
pub fn downlink_topic(device: &str, kind: &str) -> String {
    format!("tw/d/{device}/down/{kind}")
}

/// The topic a cluster's devices hear, e.g. `tw/c/cl1/alert`.
pub fn cluster_topic(cluster: &str, kind: &str) -> String {
    format!("tw/c/{cluster}/{kind}")
}

/// May `device` publish to `topic`? Only `tw/d/{device}/up/<level>` with exactly one further
/// level that is non-empty and holds no wildcard.
pub fn may_publish(device: &str, topic: &str) -> bool {
    if !is_valid_id(device) || topic.contains(['+', '#', '\0']) {
        return false;
    }
    let mut levels = topic.split('/');
    let expected = ["tw", "d", device, "up"];
    for want in expected {
        if levels.next() != Some(want) {
            return false;
        }
    }
    matches!((levels.next(), levels.next()), (Some(kind), None) if !kind.is_empty())
}

/// Is this one of the device's press topics (rate-limited by the press bucket)? Only
/// meaningful for a topic that [`may_publish`] accepted.
pub fn is_press_topic(topic: &str) -> bool {
    topic.ends_with("/up/press")
}

/// May a device of `cluster` subscribe to `filter`? Only filters inside
/// `tw/d/{device}/down/#` or `tw/c/{cluster}/#`.
pub fn may_subscribe(device: &str, cluster: &str, filter: &str) -> bool {
    if !is_valid_filter(filter) {
        return false;
    }
    let own_down = is_valid_id(device) && within(filter, &["tw", "d", device, "down"]);
    let own_cluster = is_valid_id(cluster) && within(filter, &["tw", "c", cluster]);
    own_down || own_cluster
}

/// Is `filter` the subtree `prefix` itself or inside it? The prefix levels must match
/// literally: a `+` or `#` in one of them would reach other devices or clusters. Past the
/// prefix any (valid) wildcard stays inside the subtree.
fn within(filter: &str, prefix: &[&str]) -> bool {
    let mut levels = filter.split('/');
    prefix.iter().all(|want| levels.next() == Some(want))
}

/// MQTT 3.1.1 filter syntax: non-empty, no NUL, `+` only as a whole level, `#` only as the
/// whole last level.
fn is_valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    levels.iter().enumerate().all(|(i, level)| {
        if level.contains('#') {
            *level == "#" && i == last
        } else if level.contains('+') {
            *level == "+"
        } else {
            true
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_shape() {
        assert!(is_valid_id("a"));
        assert!(is_valid_id("dev-01_A"));
        assert!(is_valid_id(&"x".repeat(64)));
        assert!(!is_valid_id(&"x".repeat(65)));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("-dev"));
        assert!(!is_valid_id("_dev"));
        for bad in ["a/b", "a+b", "a#", "$sys", "a b", "dév", "a\0"] {
            assert!(!is_valid_id(bad), "{bad:?} must be refused");
        }
    }

    #[test]
    fn publish_own_uplink_levels() {
        for kind in [
            "press",
            "respond",
            "delivered",
            "heartbeat",
            "anything-else",
        ] {
            assert!(may_publish("dev1", &uplink_topic("dev1", kind)), "{kind}");
        }
    }

    #[test]
    fn publish_refuses_other_devices_and_shapes() {
        for topic in [
            "tw/d/dev2/up/press",
            "tw/d/dev1/down/ack",
            "tw/d/dev1/up",
            "tw/d/dev1/up/",
            "tw/d/dev1/up/press/extra",
            "tw/d/dev1/up/+",
            "tw/d/dev1/up/#",
            "tw/d/+/up/press",
            "tw/c/cl1/alert",
            "$SYS/x",
            "/tw/d/dev1/up/press",
            "tw/d/dev10/up/press",
            "tw/d/dev/up/press",
            "",
        ] {
            assert!(!may_publish("dev1", topic), "{topic:?} must be refused");
        }
    }

    #[test]
    fn publish_refuses_invalid_device() {
        assert!(!may_publish("+", "tw/d/+/up/press"));
        assert!(!may_publish("", "tw/d//up/press"));
    }

    #[test]
    fn press_topic() {
        assert!(is_press_topic("tw/d/dev1/up/press"));
        assert!(!is_press_topic("tw/d/dev1/up/pressed"));
        assert!(!is_press_topic("tw/d/dev1/up/heartbeat"));
    }

    #[test]
    fn subscribe_own_downlink() {
        for f in [
            "tw/d/dev1/down/#",
            "tw/d/dev1/down/ack",
            "tw/d/dev1/down/+",
            "tw/d/dev1/down",
            "tw/d/dev1/down/a/b",
        ] {
            assert!(may_subscribe("dev1", "cl1", f), "{f:?}");
        }
    }

    #[test]
    fn subscribe_own_cluster() {
        for f in ["tw/c/cl1/#", "tw/c/cl1/alert", "tw/c/cl1/+", "tw/c/cl1"] {
            assert!(may_subscribe("dev1", "cl1", f), "{f:?}");
        }
    }

    #[test]
    fn subscribe_refuses_widening_and_foreign() {
        for f in [
            "#",
            "+",
            "tw/#",
            "tw/d/#",
            "tw/d/+/down/#",
            "tw/d/dev1/#",
            "tw/d/dev1/+/ack",
            "tw/d/dev1/up/#",
            "tw/d/dev2/down/#",
            "tw/c/#",
            "tw/c/+/alert",
            "tw/c/cl2/#",
            "tw/c/cl10/#",
            "$SYS/#",
            "$share/g/tw/c/cl1/#",
            "tw/c/cl1/#/x",
            "tw/c/cl1/a#",
            "tw/c/cl1/a+",
            "",
        ] {
            assert!(!may_subscribe("dev1", "cl1", f), "{f:?} must be refused");
        }
    }

    #[test]
    fn subscribe_with_bad_cluster_grant_refuses_cluster_filters() {
        assert!(!may_subscribe("dev1", "+", "tw/c/+/#"));
        assert!(!may_subscribe("dev1", "", "tw/c//#"));
        assert!(may_subscribe("dev1", "+", "tw/d/dev1/down/#"));
    }
}
