//! xqueue-kafka (in progress).
