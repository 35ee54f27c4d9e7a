//! Deployment gates: does a fine-tune ship?
