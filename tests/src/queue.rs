//! Small builders the queue-backend tests share: messages, fetch requests, receipts.

use std::time::Duration;

use xqueue_core::{
    now_millis, Consumer, Delivery, FetchRequest, Message, QueueName, Receipt, TaskId,
};

/// `n` messages of type `t`, priorities cycling through 0–9, enqueued now.
pub fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| Message {
            task_id: TaskId::generate(),
            task_type: "t".into(),
            priority: (i % 10) as u8,
            enqueued_at: now_millis(),
        })
        .collect()
}

/// A fetch of up to `count` messages of `q` for `c`, blocking up to `block_ms`.
pub fn fetch_req(c: &Consumer, q: &QueueName, count: usize, block_ms: u64) -> FetchRequest {
    FetchRequest {
        consumer: c.clone(),
        queues: vec![q.clone()],
        count,
        block: Duration::from_millis(block_ms),
    }
}

/// The receipts of `ds`.
pub fn receipts(ds: &[Delivery]) -> Vec<Receipt> {
    ds.iter().map(|d| d.receipt.clone()).collect()
}
