//! Docker availability checks shared by every container test.
