//! turnout application templates.
