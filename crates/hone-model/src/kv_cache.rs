//! Paged KV cache: keys and values live in fixed-size blocks drawn from one pool, and each
//! sequence owns a block table. Sequences of any length share the pool without copying, a
//! memory budget bounds the pool, and a finished sequence hands its blocks straight back.

use crate::{Error, Result};

/// Tokens per block.
pub const DEFAULT_BLOCK_SIZE: usize = 16;

/// One sequence's view of the cache: its blocks and how many positions are filled.
#[derive(Debug, Default, Clone)]
pub struct SeqCache {
    blocks: Vec<u32>,
    len: usize,
}

impl SeqCache {
    pub fn new() -> Self {
        Self::default()
    }
    /// Positions already in the cache.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn blocks(&self) -> &[u32] {
        &self.blocks
    }
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}

/// The block pool for every layer.
pub struct KvCache {
    n_layers: usize,
    kv_dim: usize,
    block_size: usize,
    num_blocks: usize,
    /// Per layer: `num_blocks * block_size * kv_dim` floats.
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    free: Vec<u32>,
}

impl KvCache {
    pub fn new(n_layers: usize, kv_dim: usize, block_size: usize, num_blocks: usize) -> Self {
        let per_layer = num_blocks * block_size * kv_dim;
        Self {
            n_layers,
            kv_dim,
            block_size,
            num_blocks,
            k: (0..n_layers).map(|_| vec![0.0; per_layer]).collect(),
            v: (0..n_layers).map(|_| vec![0.0; per_layer]).collect(),
            // Pop from the end: hand out low block numbers first.
            free: (0..num_blocks as u32).rev().collect(),
        }
    }

    /// A pool that holds at least `tokens` positions.
    pub fn for_tokens(n_layers: usize, kv_dim: usize, tokens: usize) -> Self {
        let blocks = tokens.div_ceil(DEFAULT_BLOCK_SIZE).max(1);
        Self::new(n_layers, kv_dim, DEFAULT_BLOCK_SIZE, blocks)
    }

    /// A pool sized by a memory budget in bytes.
    pub fn with_memory(n_layers: usize, kv_dim: usize, bytes: usize) -> Self {
        let per_block = Self::bytes_per_block(n_layers, kv_dim, DEFAULT_BLOCK_SIZE);
        Self::new(
            n_layers,
            kv_dim,
            DEFAULT_BLOCK_SIZE,
            (bytes / per_block).max(1),
        )
    }

    pub fn bytes_per_block(n_layers: usize, kv_dim: usize, block_size: usize) -> usize {
        2 * n_layers * block_size * kv_dim * std::mem::size_of::<f32>()
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }
    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }
    pub fn free_blocks(&self) -> usize {
        self.free.len()
    }
    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }
    pub fn n_layers(&self) -> usize {
        self.n_layers
    }

    /// Blocks a sequence needs to grow by `new_tokens`.
    pub fn blocks_needed(&self, seq: &SeqCache, new_tokens: usize) -> usize {
        (seq.len + new_tokens)
            .div_ceil(self.block_size)
            .saturating_sub(seq.blocks.len())
    }

    /// Makes room for `new_tokens` more positions; all or nothing.
    pub fn reserve(&mut self, seq: &mut SeqCache, new_tokens: usize) -> Result<()> {
        let need = self.blocks_needed(seq, new_tokens);
        if need > self.free.len() {
            return Err(Error::Invalid(format!(
                "KV cache full: need {need} more blocks, {} free of {}",
                self.free.len(),
                self.num_blocks
            )));
        }
        for _ in 0..need {
            // Checked above.
            if let Some(b) = self.free.pop() {
                seq.blocks.push(b);
            }
        }
        Ok(())
    }

    /// A new sequence holding a copy of the first `tokens` positions of `src`, so a shared
    /// prefix (an instruction prompt, a document) is computed once and continued many ways.
    /// Whole blocks are copied; all or nothing when the pool is short.
    pub fn fork(&mut self, src: &SeqCache, tokens: usize) -> Result<SeqCache> {
        if tokens > src.len {
            return Err(Error::Invalid(format!(
                "cannot fork {tokens} positions from a sequence of {}",
                src.len
            )));
        }
        let mut dst = SeqCache::new();
        self.reserve(&mut dst, tokens)?;
        let bs = self.block_size * self.kv_dim;
        let full = tokens / self.block_size;
        let rest = (tokens % self.block_size) * self.kv_dim;
        for layer in 0..self.n_layers {
            for store in [&mut self.k[layer], &mut self.v[layer]] {
                for i in 0..dst.blocks.len() {
                    let from = src.blocks[i] as usize * bs;
                    let to = dst.blocks[i] as usize * bs;
                    let n = if i < full { bs } else { rest };
                    store.copy_within(from..from + n, to);
                }
            }
        }
        dst.len = tokens;
        Ok(dst)
    }

    /// Returns the sequence's blocks to the pool and empties it.
    pub fn release(&mut self, seq: &mut SeqCache) {
        self.free.extend(seq.blocks.drain(..).rev());
        seq.len = 0;
    }

    /// Offset (in floats) of position `pos` of a sequence in a layer's storage.
    #[inline]
    pub(crate) fn offset(&self, blocks: &[u32], pos: usize) -> usize {
        let b = blocks[pos / self.block_size] as usize;
        (b * self.block_size + pos % self.block_size) * self.kv_dim
    }

    pub(crate) fn write(&mut self, layer: usize, blocks: &[u32], pos: usize, k: &[f32], v: &[f32]) {
        let o = self.offset(blocks, pos);
        self.k[layer][o..o + self.kv_dim].copy_from_slice(k);
        self.v[layer][o..o + self.kv_dim].copy_from_slice(v);
    }

    pub(crate) fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        (&self.k[layer], &self.v[layer])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_allocated_and_returned() {
        let mut c = KvCache::new(2, 8, 4, 5);
        let mut a = SeqCache::new();
        c.reserve(&mut a, 9).unwrap(); // 3 blocks
        assert_eq!(a.blocks().len(), 3);
        assert_eq!(c.free_blocks(), 2);
        a.advance(9);
        c.reserve(&mut a, 3).unwrap(); // 12 fits in 3 blocks
        assert_eq!(a.blocks().len(), 3);
        let mut b = SeqCache::new();
        assert!(c.reserve(&mut b, 12).is_err(), "3 blocks needed, 2 free");
        assert!(b.blocks().is_empty(), "all or nothing");
        c.release(&mut a);
        assert_eq!(c.free_blocks(), 5);
        c.reserve(&mut b, 12).unwrap();
    }

    #[test]
    fn offsets_follow_the_block_table() {
        let mut c = KvCache::new(1, 2, 4, 4);
        let blocks = [3u32, 1];
        c.write(0, &blocks, 5, &[1.0, 2.0], &[3.0, 4.0]);
        let (k, v) = c.layer(0);
        let o = (4 + 1) * 2;
        assert_eq!(&k[o..o + 2], &[1.0, 2.0]);
        assert_eq!(&v[o..o + 2], &[3.0, 4.0]);
    }
}
