//! The error type of the routing crate.

use std::fmt;

/// Why a route file could not become a [`crate::RouteTable`].
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// The text is not YAML, or does not fit the route file schema (an
    /// unknown field, a wrong type).
    #[error("route file is not valid: {message}")]
    Parse {
        /// What the YAML parser reported, with line and column.
        message: String,
    },
    /// The file parsed, but breaks one or more rules of the schema; every
    /// problem found is listed, not only the first.
    #[error("route file has {} problem{}: {}", problems.len(), if problems.len() == 1 { "" } else { "s" }, ProblemList(problems))]
    Invalid {
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

/// One problem in a route file: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted path of the field, such as `routes[0].services[1].weight`.
    pub field: String,
    /// What is wrong and, where it helps, what to write instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Joins problems with `; ` so one log line names all of them.
struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}
