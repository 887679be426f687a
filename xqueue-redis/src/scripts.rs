//! The Lua scripts (in `scripts/`), each with its shared helpers prepended.
//!
//! Scripts run atomically on the server: every multi-step operation is one round trip and
//! no other client sees it half done. `redis::Script` runs them with EVALSHA and loads them
//! again after a server restart (NOSCRIPT).

use redis::Script;

macro_rules! script {
    ([$($lib:literal),+], $file:literal) => {
        Script::new(concat!(
            $(include_str!(concat!("../scripts/", $lib)), "\n",)+
            include_str!(concat!("../scripts/", $file))
        ))
    };
    ($lib:literal, $file:literal) => {
        script!([$lib], $file)
    };
}

/// Every script, hashed once.
pub(crate) struct Scripts {
    pub(crate) ensure_groups: Script,
    pub(crate) publish: Script,
    pub(crate) nack: Script,
    pub(crate) reclaim: Script,
    pub(crate) touch: Script,
    pub(crate) info: Script,
    pub(crate) leave: Script,
    pub(crate) insert: Script,
    pub(crate) insert_published: Script,
    pub(crate) begin_settle: Script,
    pub(crate) complete: Script,
    pub(crate) unbegin: Script,
    pub(crate) claim_due: Script,
    pub(crate) release_due: Script,
    pub(crate) cancel: Script,
    pub(crate) requeue_failed: Script,
    pub(crate) purge: Script,
    pub(crate) acquire: Script,
    pub(crate) release: Script,
    pub(crate) refresh: Script,
    pub(crate) in_use: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            ensure_groups: script!("stream_lib.lua", "ensure_groups.lua"),
            publish: script!("stream_lib.lua", "publish.lua"),
            nack: script!("stream_lib.lua", "nack.lua"),
            reclaim: script!("stream_lib.lua", "reclaim.lua"),
            touch: script!("stream_lib.lua", "touch.lua"),
            info: script!("stream_lib.lua", "info.lua"),
            leave: script!("stream_lib.lua", "leave.lua"),
            insert: script!("state_lib.lua", "state_insert.lua"),
            insert_published: script!(
                ["state_lib.lua", "stream_lib.lua"],
                "state_insert_published.lua"
            ),
            begin_settle: script!("state_lib.lua", "state_begin_settle.lua"),
            complete: script!("state_lib.lua", "state_complete.lua"),
            unbegin: script!("state_lib.lua", "state_unbegin.lua"),
            claim_due: script!("state_lib.lua", "state_claim_due.lua"),
            release_due: script!("state_lib.lua", "state_release_due.lua"),
            cancel: script!("state_lib.lua", "state_cancel.lua"),
            requeue_failed: script!("state_lib.lua", "state_requeue_failed.lua"),
            purge: script!(["state_lib.lua", "stream_lib.lua"], "state_purge.lua"),
            acquire: script!("limiter_lib.lua", "limiter_acquire.lua"),
            release: script!("limiter_lib.lua", "limiter_release.lua"),
            refresh: script!("limiter_lib.lua", "limiter_refresh.lua"),
            in_use: script!("limiter_lib.lua", "limiter_in_use.lua"),
        }
    }
}
