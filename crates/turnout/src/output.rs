//! Human and JSON output shared by the verbs.
