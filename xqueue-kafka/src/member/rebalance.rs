//! Rebalances: what a member does when the group takes partitions away or gives new ones.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Shared, Tp};
use crate::client::{log_error, log_line};
use crate::error::KIND;
use crate::offsets::PartitionTracker;

impl Shared {
    /// Partitions taken away: stop handing out their buffered messages, give deliveries in
    /// flight up to `revoke_drain` to finish, commit what is done and forget the rest (the
    /// next owner reads it again from the committed position).
    fn revoke(&self, consumer: &BaseConsumer<MemberContext>, revoked: &TopicPartitionList) {
        let tps: Vec<Tp> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let lost = consumer.assignment_lost();
        {
            let mut st = self.lock();
            for tp in &tps {
                if let Some(buf) = st.buffers.get_mut(&tp.0) {
                    buf.retain(|m| m.partition != tp.1);
                }
                st.assigned.remove(tp);
                st.paused.remove(tp);
                st.dirty.remove(tp);
            }
        }
        let until = Instant::now() + self.revoke_drain;
        while !lost && Instant::now() < until {
            let in_flight: usize = {
                let st = self.lock();
                tps.iter()
                    .filter_map(|tp| st.trackers.get(tp))
                    .map(PartitionTracker::pending)
                    .sum()
            };
            if in_flight == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut store = TopicPartitionList::new();
        let mut commit = TopicPartitionList::new();
        {
            let mut st = self.lock();
            for tp in &tps {
                let Some(mut tracker) = st.trackers.remove(tp) else {
                    continue;
                };
                if let Some(pos) = tracker.advance() {
                    let _ = store.add_partition_offset(&tp.0, tp.1, Offset::Offset(pos));
                }
                if let Some(pos) = tracker.stored() {
                    let _ = commit.add_partition_offset(&tp.0, tp.1, Offset::Offset(pos));
                }
                let dropped = tracker.pending();
                if dropped > 0 {
                    tracing::info!(
                        backend = KIND,
                        topic = %tp.0,
                        partition = tp.1,
                        in_flight = dropped,
                        "partition revoked with deliveries in flight; they will be redelivered"
                    );
                }
            }
        }
        if lost {
            return;
        }
        if store.count() > 0 {
            if let Err(e) = consumer.store_offsets(&store) {
                tracing::debug!(backend = KIND, error = %e, "storing offsets on revoke");
            }
        }
        if commit.count() > 0 {
            if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                tracing::warn!(backend = KIND, error = %e, "committing offsets on revoke");
            }
        }
    }

    /// Partitions given to this member.
    fn assign(&self, consumer: &BaseConsumer<MemberContext>, assigned: &TopicPartitionList) {
        {
            let mut st = self.lock();
            for elem in assigned.elements() {
                st.assigned
                    .insert((elem.topic().to_string(), elem.partition()));
            }
            st.assigned_gen = st.subscribed_gen;
        }
        // librdkafka keeps a partition paused across unassign/assign: start it afresh.
        if assigned.count() > 0 {
            if let Err(e) = consumer.resume(assigned) {
                tracing::debug!(backend = KIND, error = %e, "resuming newly assigned partitions");
            }
        }
        self.arrived.notify_waiters();
    }
}

/// Rebalance callbacks and logging of a member's consumer.
pub(crate) struct MemberContext {
    pub(super) shared: Arc<Shared>,
}

impl ClientContext for MemberContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_line(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_error(&error, reason);
    }
}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => self.shared.revoke(consumer, tpl),
            Rebalance::Error(e) => tracing::warn!(backend = KIND, error = %e, "rebalance error"),
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.shared.assign(consumer, tpl);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(backend = KIND, error = %e, partitions = offsets.count(), "commit failed");
        }
    }
}
