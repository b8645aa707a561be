//! A segment's sparse offset index and time index, held in memory and written to
//! `<base>.index` and `<base>.timeindex` when the segment is sealed.
//!
//! File formats (big-endian, as Kafka's): the offset index is 8-byte entries
//! `(relative offset u32, position u32)`; the time index is 12-byte entries
//! `(timestamp i64, relative offset u32)`. Relative offsets are from the segment's
//! base offset.

/// Sparse map from offsets to byte positions in one segment.
///
/// Invariant: entries strictly increase in both offset and position, and each
/// position is the start of the batch whose base offset is the entry's offset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    const ENTRY: usize = 8;

    /// Adds an entry for a batch starting at relative offset `rel` and `position`.
    pub fn push(&mut self, rel: u32, position: u32) {
        if self
            .entries
            .last()
            .is_none_or(|&(r, p)| rel > r && position > p)
        {
            self.entries.push((rel, position));
        }
    }

    /// The last entry at or before relative offset `rel`: a batch start from which a
    /// scan finds `rel`. `(0, 0)` when no entry is that low.
    pub fn lookup(&self, rel: u32) -> (u32, u32) {
        let i = self.entries.partition_point(|&(r, _)| r <= rel);
        if i == 0 {
            (0, 0)
        } else {
            self.entries[i - 1]
        }
    }

    /// Drops entries at or after byte `position` (after a truncation).
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|&(_, p)| p < position);
        self.entries.truncate(keep);
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    /// The file contents.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * Self::ENTRY);
        for &(rel, pos) in &self.entries {
            out.extend(rel.to_be_bytes());
            out.extend(pos.to_be_bytes());
        }
        out
    }

    /// Reads a file written by [`encode`](Self::encode); `None` if it is damaged
    /// (a partial entry or entries out of order).
    pub fn decode(bytes: &[u8]) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(Self::ENTRY) {
            return None;
        }
        let mut index = OffsetIndex::default();
        for entry in bytes.chunks_exact(Self::ENTRY) {
            let rel = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let pos = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]);
            if index.last().is_some_and(|(r, p)| rel <= r || pos <= p) {
                return None;
            }
            index.entries.push((rel, pos));
        }
        Some(index)
    }
}

/// Sparse map from timestamps to offsets in one segment.
///
/// Invariant: timestamps and offsets strictly increase; an entry `(t, rel)` says
/// the batch at `rel` has max timestamp `t` and every earlier batch's is `<= t`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    const ENTRY: usize = 12;

    /// Adds `(timestamp, rel)` if it raises the index's largest timestamp.
    pub fn push(&mut self, timestamp: i64, rel: u32) {
        if self
            .entries
            .last()
            .is_none_or(|&(t, r)| timestamp > t && rel > r)
        {
            self.entries.push((timestamp, rel));
        }
    }

    /// A relative offset from which a forward scan finds the first batch with a
    /// max timestamp `>= timestamp`: the last entry whose timestamp is below it.
    pub fn lookup(&self, timestamp: i64) -> u32 {
        let i = self.entries.partition_point(|&(t, _)| t < timestamp);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    /// Drops entries at or after relative offset `rel`.
    pub fn truncate_to_offset(&mut self, rel: u32) {
        let keep = self.entries.partition_point(|&(_, r)| r < rel);
        self.entries.truncate(keep);
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    /// The file contents.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * Self::ENTRY);
        for &(t, rel) in &self.entries {
            out.extend(t.to_be_bytes());
            out.extend(rel.to_be_bytes());
        }
        out
    }

    /// Reads a file written by [`encode`](Self::encode); `None` if damaged.
    pub fn decode(bytes: &[u8]) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(Self::ENTRY) {
            return None;
        }
        let mut index = TimeIndex::default();
        for entry in bytes.chunks_exact(Self::ENTRY) {
            let mut t = [0; 8];
            t.copy_from_slice(&entry[..8]);
            let t = i64::from_be_bytes(t);
            let rel = u32::from_be_bytes([entry[8], entry[9], entry[10], entry[11]]);
            if index.last().is_some_and(|(lt, lr)| t <= lt || rel <= lr) {
                return None;
            }
            index.entries.push((t, rel));
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_the_floor_entry() {
        let mut index = OffsetIndex::default();
        index.push(10, 4096);
        index.push(20, 8192);
        let cases = [
            (0, (0, 0)),
            (9, (0, 0)),
            (10, (10, 4096)),
            (15, (10, 4096)),
            (99, (20, 8192)),
        ];
        for (rel, want) in cases {
            assert_eq!(index.lookup(rel), want, "rel {rel}");
        }
    }

    #[test]
    fn offset_index_round_trips_and_rejects_damage() {
        let mut index = OffsetIndex::default();
        index.push(1, 100);
        index.push(5, 900);
        let bytes = index.encode();
        assert_eq!(OffsetIndex::decode(&bytes), Some(index));
        assert_eq!(OffsetIndex::decode(&bytes[..12]), None, "partial entry");
        let mut swapped = bytes[8..].to_vec();
        swapped.extend(&bytes[..8]);
        assert_eq!(OffsetIndex::decode(&swapped), None, "out of order");
    }

    #[test]
    fn time_lookup_starts_before_the_first_match() {
        let mut index = TimeIndex::default();
        index.push(100, 0);
        index.push(200, 10);
        index.push(150, 20); // not a new maximum: ignored
        assert_eq!(index.lookup(50), 0);
        assert_eq!(index.lookup(100), 0);
        assert_eq!(index.lookup(101), 0);
        assert_eq!(index.lookup(201), 10);
        assert_eq!(index.last(), Some((200, 10)));
        assert_eq!(TimeIndex::decode(&index.encode()), Some(index));
    }

    #[test]
    fn truncation_drops_entries_at_and_after_the_cut() {
        let mut index = OffsetIndex::default();
        index.push(1, 100);
        index.push(5, 900);
        index.truncate_to_position(900);
        assert_eq!(index.last(), Some((1, 100)));
        let mut time = TimeIndex::default();
        time.push(1, 1);
        time.push(2, 5);
        time.truncate_to_offset(5);
        assert_eq!(time.last(), Some((1, 1)));
    }
}
