//! xqueue-redis (in progress).
