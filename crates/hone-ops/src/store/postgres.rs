//! The PostgreSQL store (in progress).

use std::path::Path;
use std::sync::Arc;

use super::Store;
use crate::{Error, Result};

pub fn open(_url: &str, _objects: &Path) -> Result<Arc<dyn Store>> {
    Err(Error::invalid("the PostgreSQL store is not built yet"))
}
