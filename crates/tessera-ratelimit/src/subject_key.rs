//! One `u64` per (plan, subject), as the in-process tables key their
//! entries: a keyed SipHash, so ids chosen by clients cannot aim at one
//! bucket, and no allocation per lookup.

use std::hash::{BuildHasherDefault, Hasher};

use siphasher::sip::SipHasher13;

use crate::plan::Plan;
use crate::store::Subject;

/// Hashes (plan, kind, id) under random keys of its own.
#[derive(Clone, Copy)]
pub(crate) struct SubjectKeys(SipHasher13);

impl SubjectKeys {
    pub(crate) fn random() -> Self {
        SubjectKeys(SipHasher13::new_with_keys(rand::random(), rand::random()))
    }

    pub(crate) fn key(&self, plan: &Plan, subject: Subject<'_>) -> u64 {
        let mut h = self.0;
        for part in [plan.name(), subject.kind, subject.id] {
            h.write(part.as_bytes());
            h.write_u8(0xff); // in none of the three: an unambiguous join
        }
        h.finish()
    }
}

/// For maps keyed by [`SubjectKeys::key`]: the keys are SipHash outputs
/// already.
pub(crate) type PassThrough = BuildHasherDefault<PassThroughHasher>;

#[derive(Default)]
pub(crate) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
