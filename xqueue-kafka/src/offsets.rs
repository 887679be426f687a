//! Out-of-order completion on one partition: which offset may be committed.
//!
//! Kafka remembers one position per partition and group: "everything below this offset is
//! done". XQueue runs many messages of one partition at once and they finish in any order, so
//! the position may only advance over a contiguous run of finished messages. A
//! [`PartitionTracker`] holds, for one partition this consumer owns, every offset read and not
//! yet committed, with its state; [`PartitionTracker::advance`] gives the next offset to store.

use std::collections::BTreeMap;

use xqueue_core::Message;

/// Where one read message is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Slot {
    /// Read from Kafka, waiting in this process's buffer for a fetch.
    Buffered,
    /// Handed to a worker; kept so a nack can publish it again.
    Delivered(Message),
    /// Acked, nacked (and republished) or skipped: may be committed.
    Done,
}

/// Offsets of one partition read since its last committed position.
///
/// # Behavior
/// - Offsets are read in increasing order (Kafka's order within a partition); gaps (compacted
///   or transaction-marker offsets) are fine: contiguity is over offsets read, not integers.
/// - The commit position is the lowest offset not done, or one past the highest offset read
///   when all are done; it never moves backwards.
#[derive(Debug, Default)]
pub(crate) struct PartitionTracker {
    slots: BTreeMap<i64, Slot>,
    /// One past the highest offset read.
    next_read: Option<i64>,
    /// The last position handed out by [`PartitionTracker::advance`].
    stored: Option<i64>,
}

impl PartitionTracker {
    /// Records a message read from Kafka into the buffer.
    pub(crate) fn read(&mut self, offset: i64) {
        self.slots.insert(offset, Slot::Buffered);
        self.next_read = Some(self.next_read.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// Records a message read that will never be delivered (undecodable): done at once.
    pub(crate) fn skip(&mut self, offset: i64) {
        self.read(offset);
        self.slots.insert(offset, Slot::Done);
    }

    /// Records that a buffered message was handed to a worker.
    pub(crate) fn deliver(&mut self, offset: i64, message: Message) {
        if let Some(slot) = self.slots.get_mut(&offset) {
            *slot = Slot::Delivered(message);
        }
    }

    /// The message of a delivered, not yet completed offset.
    pub(crate) fn delivered(&self, offset: i64) -> Option<&Message> {
        match self.slots.get(&offset) {
            Some(Slot::Delivered(m)) => Some(m),
            _ => None,
        }
    }

    /// Marks a delivered offset done; returns whether it was delivered and not yet done.
    pub(crate) fn complete(&mut self, offset: i64) -> bool {
        match self.slots.get_mut(&offset) {
            Some(slot @ Slot::Delivered(_)) => {
                *slot = Slot::Done;
                true
            }
            _ => false,
        }
    }

    /// Drops the leading done offsets and returns the new commit position, if it moved.
    pub(crate) fn advance(&mut self) -> Option<i64> {
        while let Some(entry) = self.slots.first_entry() {
            if *entry.get() != Slot::Done {
                break;
            }
            entry.remove();
        }
        let position = match self.slots.first_key_value() {
            Some((offset, _)) => *offset,
            None => self.next_read?,
        };
        if self.stored.is_some_and(|s| s >= position) {
            return None;
        }
        self.stored = Some(position);
        Some(position)
    }

    /// The position last returned by [`PartitionTracker::advance`].
    pub(crate) fn stored(&self) -> Option<i64> {
        self.stored
    }

    /// Deliveries handed out and not completed.
    pub(crate) fn pending(&self) -> usize {
        self.slots
            .values()
            .filter(|s| matches!(s, Slot::Delivered(_)))
            .count()
    }

    /// One past the highest offset read, if any.
    pub(crate) fn next_read(&self) -> Option<i64> {
        self.next_read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xqueue_core::TaskId;

    fn msg() -> Message {
        Message {
            task_id: TaskId::generate(),
            task_type: "t".into(),
            priority: 5,
            enqueued_at: 0,
        }
    }

    fn tracker(offsets: impl IntoIterator<Item = i64>) -> PartitionTracker {
        let mut t = PartitionTracker::default();
        for o in offsets {
            t.read(o);
            t.deliver(o, msg());
        }
        t
    }

    #[test]
    fn only_the_contiguous_prefix_is_committed() {
        let mut t = tracker(10..15);
        assert_eq!(t.advance(), Some(10), "nothing done: the start position");
        assert!(t.complete(12));
        assert!(t.complete(14));
        assert_eq!(t.advance(), None, "10 and 11 are still running");
        assert!(t.complete(10));
        assert_eq!(t.advance(), Some(11));
        assert!(t.complete(11));
        assert_eq!(t.advance(), Some(13), "12 was done, 13 is not");
        assert!(t.complete(13));
        assert_eq!(t.advance(), Some(15), "all done: one past the last read");
        assert_eq!(t.pending(), 0);
        assert_eq!(t.advance(), None);
    }

    #[test]
    fn completing_twice_or_unknown_counts_once() {
        let mut t = tracker([3]);
        assert!(t.complete(3));
        assert!(!t.complete(3));
        assert!(!t.complete(99));
        t.read(4);
        assert!(!t.complete(4), "buffered, never delivered");
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn gaps_in_offsets_do_not_block_the_position() {
        let mut t = tracker([5, 7, 20]);
        assert!(t.complete(5));
        assert!(t.complete(7));
        assert_eq!(t.advance(), Some(20));
        t.skip(21);
        assert!(t.complete(20));
        assert_eq!(t.advance(), Some(22));
        assert_eq!(t.next_read(), Some(22));
    }

    #[test]
    fn nack_keeps_the_message_until_completed() {
        let mut t = tracker([0]);
        assert!(t.delivered(0).is_some());
        assert!(t.complete(0));
        assert!(t.delivered(0).is_none());
        assert_eq!(t.stored(), None);
        assert_eq!(t.advance(), Some(1));
        assert_eq!(t.stored(), Some(1));
    }
}
