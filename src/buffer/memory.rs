//! Memory mode: the records not yet acknowledged, in a queue. Same limits
//! and accounting (8 bytes of framing per record) as the disk mode, so a
//! `max_size` means the same thing in both.

use std::collections::VecDeque;

use super::format::RECORD_OVERHEAD;

#[derive(Default)]
pub(super) struct MemStore {
    records: VecDeque<Vec<u8>>,
    /// Sequence of `records[0]`, which is also the first unacknowledged one.
    front: u64,
}

impl MemStore {
    pub(super) fn append(&mut self, records: Vec<Vec<u8>>) {
        self.records.extend(records);
    }

    /// Copies records from `read_seq` on; they stay queued until acknowledged.
    pub(super) fn read(
        &self,
        read_seq: &mut u64,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<(u64, Vec<u8>)>,
    ) {
        let mut bytes = 0usize;
        let start = read_seq.saturating_sub(self.front) as usize;
        for r in self.records.iter().skip(start) {
            if out.len() >= max_records || (!out.is_empty() && bytes + r.len() > max_bytes) {
                break;
            }
            bytes += r.len();
            out.push((*read_seq, r.clone()));
            *read_seq += 1;
        }
    }

    /// Drops the records below `acked`; returns the bytes and records freed.
    pub(super) fn ack(&mut self, acked: u64) -> (u64, u64) {
        let (mut bytes, mut records) = (0, 0);
        while self.front < acked {
            let Some(r) = self.records.pop_front() else {
                break;
            };
            bytes += RECORD_OVERHEAD + r.len() as u64;
            records += 1;
            self.front += 1;
        }
        (bytes, records)
    }
}
