//! The training configuration (`hone train --config`): TOML syntax, known keys, types and
//! ranges. A text that passes must write itself back (`to_toml`) to a text that parses again to
//! the same configuration, since a run folder's `train_config.toml` is read back on `--resume`.

use hone_train::config::TrainConfig;
use std::path::Path;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/nonexistent/fuzz/train.toml");
    match TrainConfig::parse(text, path, &[]) {
        Err(e) => crate::said(e),
        Ok(cfg) => {
            let echo = cfg.to_toml();
            let again = TrainConfig::parse(&echo, path, &[]).unwrap_or_else(|e| {
                panic!("the written configuration does not parse: {e}\n{echo}")
            });
            assert_eq!(
                again.to_toml(),
                echo,
                "the configuration changed on a round trip"
            );
        }
    }
}
