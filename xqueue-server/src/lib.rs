//! xqueue-server (in progress).
