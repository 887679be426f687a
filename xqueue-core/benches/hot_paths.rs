//! Hot paths: task encode/decode and the dispatch loop (submit → fetch → run → ack) on the
//! in-memory backend, where the broker costs nothing and the pool's own overhead shows.
//!
//! Run: `cargo bench -p xqueue-core --bench hot_paths`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use xqueue_core::{
    memory, now_millis, ManagerConfig, NewTask, Task, TaskError, TaskHandler, TaskId, TaskManager,
    TaskStatus,
};

fn sample_task() -> Task {
    Task {
        id: TaskId::generate(),
        task_type: "email".into(),
        payload: json!({"to": "user@example.com", "subject": "hello", "body": "x".repeat(64)}),
        priority: 5,
        status: TaskStatus::Pending,
        attempts: 0,
        max_retries: 3,
        timeout_ms: None,
        created_at: now_millis(),
        run_at: None,
        started_at: None,
        finished_at: None,
        last_error: None,
        result: None,
        worker: None,
    }
}

fn codec(c: &mut Criterion) {
    let task = sample_task();
    let bytes = task.encode();
    let mut g = c.benchmark_group("task_codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| {
        b.iter(|| std::hint::black_box(&task).encode())
    });
    g.bench_function("decode", |b| {
        b.iter(|| Task::decode(std::hint::black_box(&bytes)).unwrap())
    });
    g.finish();
}

struct Counting(Arc<AtomicUsize>);

#[async_trait]
impl TaskHandler for Counting {
    fn task_type(&self) -> &str {
        "noop"
    }
    async fn handle(&self, _: &Task) -> Result<Value, TaskError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Value::Null)
    }
}

const TASKS: usize = 10_000;

fn dispatch_loop(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("dispatch_loop");
    g.throughput(Throughput::Elements(TASKS as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    g.bench_function("memory_10k_noop_10_workers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Queue the tasks first; time only their processing.
                    let done = Arc::new(AtomicUsize::new(0));
                    let config = ManagerConfig {
                        block_timeout: Duration::from_millis(100),
                        ..ManagerConfig::default()
                    };
                    let m = TaskManager::new(memory::backends(), config);
                    m.register_handler(Arc::new(Counting(done.clone())))
                        .unwrap();
                    let batch: Vec<NewTask> = (0..TASKS)
                        .map(|_| NewTask::new("noop", Value::Null))
                        .collect();
                    for chunk in batch.chunks(1000) {
                        m.submit_batch(chunk.to_vec()).await.unwrap();
                    }
                    let start = Instant::now();
                    m.start().await.unwrap();
                    while done.load(Ordering::Relaxed) < TASKS {
                        tokio::time::sleep(Duration::from_micros(100)).await;
                    }
                    total += start.elapsed();
                    m.shutdown(Duration::from_secs(5)).await;
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(benches, codec, dispatch_loop);
criterion_main!(benches);
