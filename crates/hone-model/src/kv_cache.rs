//! Paged KV cache: keys and values live in fixed-size blocks drawn from one pool, and each
//! sequence owns a block table. Sequences of any length share the pool without copying, a
//! memory budget bounds the pool, and a finished sequence hands its blocks straight back.
//!
//! Optionally ([`KvCache::enable_prefix_cache`]) full blocks are shared between sequences:
//! every block has a reference count, and full prompt blocks are registered in a prefix index
//! keyed by the chain hash of (namespace, the previous block's hash, this block's tokens). A
//! new sequence may start on the longest run of registered blocks matching its prompt
//! ([`KvCache::reuse_prefix`]) and computes only the rest. A shared block is always full and
//! is never written again (a sequence writes only past its length), so no copy-on-write is
//! needed. A registered block nobody holds stays cached but counts as free: allocation takes
//! truly free blocks first, then evicts the least recently released cached block. Without
//! the index every block is owned by one sequence and behaves exactly as before.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

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
    /// Per block: how many sequences hold it.
    refs: Vec<u32>,
    /// The prefix index (automatic prefix caching); `None` unless enabled.
    prefix: Option<PrefixIndex>,
}

/// What identifies a full block's K/V: the namespace (the base model or one adapter: K/V
/// differ per adapter), the chain hash of everything before it, and its own tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BlockKey {
    ns: u64,
    parent: u64,
    tokens: Box<[u32]>,
}

impl BlockKey {
    /// The chain hash that the next block's key refers to.
    fn chain_hash(&self) -> u64 {
        // SipHash with fixed keys: the same for the same key within (and across) runs.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

/// The chain hash before a sequence's first block.
const ROOT_HASH: u64 = 0x686f_6e65_5f6b_7600;

/// Registered full blocks, and those of them nobody holds (evictable, least recent first).
struct PrefixIndex {
    map: HashMap<BlockKey, u32>,
    /// Per block: its key while registered.
    key_of: Vec<Option<BlockKey>>,
    /// Registered blocks with no holder, by the tick they were released: evicted oldest first.
    idle: BTreeMap<u64, u32>,
    /// Per block: its tick in `idle` (meaningful only while it is there).
    idle_tick: Vec<u64>,
    tick: u64,
}

impl PrefixIndex {
    fn new(num_blocks: usize) -> Self {
        Self {
            map: HashMap::new(),
            key_of: vec![None; num_blocks],
            idle: BTreeMap::new(),
            idle_tick: vec![0; num_blocks],
            tick: 0,
        }
    }
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
            refs: vec![0; num_blocks],
            prefix: None,
        }
    }

    /// Turns on automatic prefix caching (see the module docs). Call it on a fresh pool.
    pub fn enable_prefix_cache(&mut self) {
        if self.prefix.is_none() {
            self.prefix = Some(PrefixIndex::new(self.num_blocks));
        }
    }

    pub fn prefix_cache_enabled(&self) -> bool {
        self.prefix.is_some()
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
    /// Blocks a sequence can get: truly free ones and cached ones nobody holds (evictable).
    pub fn free_blocks(&self) -> usize {
        self.free.len() + self.cached_blocks()
    }
    /// Cached blocks nobody holds (part of [`free_blocks`](Self::free_blocks)).
    pub fn cached_blocks(&self) -> usize {
        self.prefix.as_ref().map_or(0, |p| p.idle.len())
    }
    /// How many sequences hold block `b`.
    pub fn ref_count(&self, b: u32) -> u32 {
        self.refs[b as usize]
    }
    /// Whether block `b` is registered in the prefix index.
    pub fn is_cached(&self, b: u32) -> bool {
        self.prefix
            .as_ref()
            .is_some_and(|p| p.key_of[b as usize].is_some())
    }

    /// A block for one holder: a free one, else the least recently released cached one
    /// (dropped from the index).
    fn take_block(&mut self) -> Option<u32> {
        let b = match self.free.pop() {
            Some(b) => b,
            None => {
                let p = self.prefix.as_mut()?;
                let (_, b) = p.idle.pop_first()?;
                if let Some(key) = p.key_of[b as usize].take() {
                    p.map.remove(&key);
                }
                b
            }
        };
        self.refs[b as usize] = 1;
        Some(b)
    }

    /// One holder lets go of block `b`: with none left it is cached (registered) or free.
    fn drop_ref(&mut self, b: u32) {
        let r = &mut self.refs[b as usize];
        *r = r.saturating_sub(1);
        if *r > 0 {
            return;
        }
        match self.prefix.as_mut() {
            Some(p) if p.key_of[b as usize].is_some() => {
                p.tick += 1;
                p.idle.insert(p.tick, b);
                p.idle_tick[b as usize] = p.tick;
            }
            _ => self.free.push(b),
        }
    }

    /// The keys of the full blocks of `tokens` (namespace `ns`), first block first.
    fn block_keys(&self, ns: u64, tokens: &[u32], blocks: usize) -> Vec<BlockKey> {
        let mut parent = ROOT_HASH;
        let mut keys = Vec::with_capacity(blocks);
        for chunk in tokens.chunks_exact(self.block_size).take(blocks) {
            let key = BlockKey {
                ns,
                parent,
                tokens: chunk.into(),
            };
            parent = key.chain_hash();
            keys.push(key);
        }
        keys
    }

    /// Cached blocks holding the longest prefix of `tokens` (full blocks only), first block
    /// first. Empty when the prefix cache is off.
    pub fn lookup_prefix(&self, ns: u64, tokens: &[u32]) -> Vec<u32> {
        let Some(p) = self.prefix.as_ref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut parent = ROOT_HASH;
        for chunk in tokens.chunks_exact(self.block_size) {
            let key = BlockKey {
                ns,
                parent,
                tokens: chunk.into(),
            };
            match p.map.get(&key) {
                Some(&b) => out.push(b),
                None => break,
            }
            parent = key.chain_hash();
        }
        out
    }

    /// Starts the empty sequence `seq` on the cached blocks holding the longest prefix of
    /// `tokens` (namespace `ns`: the base model or one adapter), so only the rest has to be
    /// computed. Pass the prompt without (at least) its last token, so at least one token is
    /// still fed and gives logits. Returns the positions reused (a multiple of the block size; 0 when
    /// the prefix cache is off, nothing matches or `seq` is not empty).
    pub fn reuse_prefix(&mut self, seq: &mut SeqCache, ns: u64, tokens: &[u32]) -> usize {
        if !seq.blocks.is_empty() || seq.len > 0 {
            return 0;
        }
        let hit = self.lookup_prefix(ns, tokens);
        let Some(p) = self.prefix.as_mut() else {
            return 0;
        };
        for &b in &hit {
            if self.refs[b as usize] == 0 {
                p.idle.remove(&p.idle_tick[b as usize]);
            }
            self.refs[b as usize] += 1;
        }
        seq.blocks.extend_from_slice(&hit);
        seq.len = hit.len() * self.block_size;
        seq.len
    }

    /// Registers the full blocks of `seq` holding `tokens` (its first positions, already
    /// computed; usually the prompt) in the prefix index under namespace `ns`, so later
    /// sequences can start on them. Blocks already registered stay as they are; a block whose
    /// contents another block already holds stays private. No-op when the prefix cache is off.
    pub fn register_prefix(&mut self, ns: u64, seq: &SeqCache, tokens: &[u32]) {
        if self.prefix.is_none() {
            return;
        }
        let full = tokens.len().min(seq.len) / self.block_size;
        let keys = self.block_keys(ns, tokens, full);
        let Some(p) = self.prefix.as_mut() else {
            return;
        };
        for (key, &b) in keys.into_iter().zip(&seq.blocks) {
            if p.key_of[b as usize].is_some() || p.map.contains_key(&key) {
                continue;
            }
            p.map.insert(key.clone(), b);
            p.key_of[b as usize] = Some(key);
        }
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
        if need > self.free_blocks() {
            return Err(Error::Invalid(format!(
                "KV cache full: need {need} more blocks, {} free of {}",
                self.free_blocks(),
                self.num_blocks
            )));
        }
        for _ in 0..need {
            // Checked above.
            if let Some(b) = self.take_block() {
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

    /// Lets go of the sequence's blocks and empties it. A block another sequence holds stays
    /// in use; a cached one nobody holds becomes evictable; any other goes back to the pool.
    pub fn release(&mut self, seq: &mut SeqCache) {
        // Last block first, so the first block is handed out (or evicted) last.
        for b in seq.blocks.drain(..).rev() {
            self.drop_ref(b);
        }
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
    /// A pool of `n` blocks of 4 tokens with the prefix cache on.
    fn cached(n: usize) -> KvCache {
        let mut c = KvCache::new(2, 8, 4, n);
        c.enable_prefix_cache();
        c
    }

    /// A sequence of `tokens.len()` computed positions, its full blocks registered.
    fn computed(c: &mut KvCache, ns: u64, tokens: &[u32]) -> SeqCache {
        let mut s = SeqCache::new();
        c.reserve(&mut s, tokens.len()).unwrap();
        s.advance(tokens.len());
        c.register_prefix(ns, &s, tokens);
        s
    }

    #[test]
    fn without_the_prefix_cache_nothing_is_shared() {
        let mut c = KvCache::new(2, 8, 4, 4);
        let t: Vec<u32> = (0..8).collect();
        let mut a = computed(&mut c, 0, &t);
        assert!(!c.prefix_cache_enabled());
        assert!(!c.is_cached(a.blocks()[0]));
        let mut b = SeqCache::new();
        assert_eq!(c.reuse_prefix(&mut b, 0, &t), 0);
        assert!(b.is_empty() && b.blocks().is_empty());
        c.release(&mut a);
        assert_eq!(c.free_blocks(), 4);
        assert_eq!(c.cached_blocks(), 0);
        // Blocks are handed out in the same order as ever: the released ones, first first.
        let mut d = SeqCache::new();
        c.reserve(&mut d, 16).unwrap();
        assert_eq!(d.blocks(), &[0, 1, 2, 3]);
    }

    #[test]
    fn shared_blocks_are_counted_and_only_full_prompt_blocks_match() {
        let mut c = cached(8);
        let t: Vec<u32> = (100..110).collect(); // 2 full blocks and 2 tokens
        let mut a = computed(&mut c, 0, &t);
        assert_eq!(a.blocks().len(), 3);
        assert!(c.is_cached(a.blocks()[0]) && c.is_cached(a.blocks()[1]));
        assert!(
            !c.is_cached(a.blocks()[2]),
            "a partial block is never registered"
        );
        assert_eq!(c.lookup_prefix(0, &t), a.blocks()[..2].to_vec());
        // Another namespace (adapter) or another first token: no match.
        assert!(c.lookup_prefix(1, &t).is_empty());
        let mut other = t.clone();
        other[0] = 7;
        assert!(c.lookup_prefix(0, &other).is_empty());
        // Differing in the second block: only the first one matches.
        let mut second = t.clone();
        second[5] = 7;
        assert_eq!(c.lookup_prefix(0, &second), a.blocks()[..1].to_vec());
        // Start b on a's blocks: the prompt without its last token covers 2 blocks.
        let mut b = SeqCache::new();
        assert_eq!(c.reuse_prefix(&mut b, 0, &t[..t.len() - 1]), 8);
        assert_eq!(b.len(), 8);
        assert_eq!(b.blocks(), &a.blocks()[..2]);
        assert_eq!(c.ref_count(a.blocks()[0]), 2);
        assert_eq!(c.ref_count(a.blocks()[2]), 1);
        assert_eq!(c.free_blocks(), 5, "shared blocks are counted once");
        // b grows into a block of its own.
        c.reserve(&mut b, 3).unwrap();
        assert_eq!(b.blocks().len(), 3);
        assert_ne!(b.blocks()[2], a.blocks()[2]);
        assert_eq!(c.free_blocks(), 4);
        // An 8-token prompt reuses at most 1 block (the last token is always computed).
        let mut d = SeqCache::new();
        assert_eq!(c.reuse_prefix(&mut d, 0, &t[..7]), 4);
        assert_eq!(c.ref_count(a.blocks()[0]), 3);
        // A sequence that is not empty reuses nothing.
        assert_eq!(c.reuse_prefix(&mut d, 0, &t[..9]), 0);
        c.release(&mut d);
        assert_eq!(c.ref_count(a.blocks()[0]), 2);
        c.release(&mut b);
        c.release(&mut a);
        assert_eq!(c.free_blocks(), 8);
        assert_eq!(c.cached_blocks(), 2);
    }

    #[test]
    fn a_shared_block_is_never_freed_while_held() {
        let mut c = cached(6);
        let t: Vec<u32> = (0..8).collect();
        let mut a = computed(&mut c, 0, &t);
        let mut b = SeqCache::new();
        assert_eq!(c.reuse_prefix(&mut b, 0, &t), 8);
        let held = b.blocks().to_vec();
        // a goes (finished, preempted or cancelled): b still holds both blocks.
        c.release(&mut a);
        assert_eq!(c.cached_blocks(), 0, "held blocks are not evictable");
        assert_eq!(c.free_blocks(), 4);
        for &h in &held {
            assert_eq!(c.ref_count(h), 1);
        }
        // Take everything that is left: none of b's blocks is handed out.
        let mut x = SeqCache::new();
        c.reserve(&mut x, 16).unwrap();
        assert!(x.blocks().iter().all(|blk| !held.contains(blk)));
        let mut y = SeqCache::new();
        assert!(c.reserve(&mut y, 1).is_err(), "the pool is exhausted");
        assert!(y.blocks().is_empty());
        // b's blocks still match its prefix.
        assert_eq!(c.lookup_prefix(0, &t), held);
        c.release(&mut x);
        c.release(&mut b);
        assert_eq!(c.free_blocks(), 6);
        assert_eq!(c.cached_blocks(), 2);
    }

    #[test]
    fn idle_cached_blocks_are_evicted_least_recently_released_first() {
        let mut c = cached(6);
        let t1: Vec<u32> = (0..8).collect();
        let t2: Vec<u32> = (50..58).collect();
        let mut a = computed(&mut c, 0, &t1);
        let mut b = computed(&mut c, 0, &t2);
        let (a_blocks, b_blocks) = (a.blocks().to_vec(), b.blocks().to_vec());
        c.release(&mut a); // released first: evicted first, its last block before its first
        c.release(&mut b);
        assert_eq!(c.cached_blocks(), 4);
        assert_eq!(c.free_blocks(), 6);
        // Reusing t1's prefix makes it the most recent once released again.
        let mut r = SeqCache::new();
        assert_eq!(c.reuse_prefix(&mut r, 0, &t1), 8);
        assert_eq!(c.cached_blocks(), 2);
        c.release(&mut r);
        // Truly free blocks go first.
        let mut x = SeqCache::new();
        c.reserve(&mut x, 8).unwrap();
        x.advance(8);
        assert!(x
            .blocks()
            .iter()
            .all(|blk| !a_blocks.contains(blk) && !b_blocks.contains(blk)));
        assert_eq!(c.cached_blocks(), 4);
        // Then t2's blocks (released before t1's second release), last block first.
        c.reserve(&mut x, 4).unwrap();
        x.advance(4);
        assert_eq!(x.blocks()[2], b_blocks[1]);
        assert!(!c.is_cached(b_blocks[1]));
        assert_eq!(c.lookup_prefix(0, &t2), vec![b_blocks[0]]);
        c.reserve(&mut x, 4).unwrap();
        x.advance(4);
        assert_eq!(x.blocks()[3], b_blocks[0]);
        assert!(c.lookup_prefix(0, &t2).is_empty());
        assert_eq!(c.lookup_prefix(0, &t1), a_blocks);
        c.reserve(&mut x, 4).unwrap();
        assert_eq!(x.blocks()[4], a_blocks[1]);
        assert_eq!(c.lookup_prefix(0, &t1), vec![a_blocks[0]]);
        assert_eq!(c.free_blocks(), 1);
        c.release(&mut x);
        assert_eq!(c.free_blocks(), 6);
        assert_eq!(c.cached_blocks(), 1);
    }

    #[test]
    fn a_duplicate_block_stays_private_and_everything_comes_back() {
        let mut c = cached(8);
        let t: Vec<u32> = (0..8).collect();
        // Two sequences compute the same prompt side by side (neither found it cached).
        let mut a = computed(&mut c, 0, &t);
        let mut b = computed(&mut c, 0, &t);
        assert!(c.is_cached(a.blocks()[0]));
        assert!(!c.is_cached(b.blocks()[0]), "the first registration wins");
        assert_eq!(c.lookup_prefix(0, &t), a.blocks().to_vec());
        // The same prompt under another namespace registers blocks of its own.
        let mut d = computed(&mut c, 9, &t);
        assert_eq!(c.lookup_prefix(9, &t), d.blocks().to_vec());
        assert_eq!(c.free_blocks(), 2);
        let mut e = SeqCache::new();
        assert_eq!(c.reuse_prefix(&mut e, 0, &t[..7]), 4);
        for s in [&mut a, &mut b, &mut d, &mut e] {
            c.release(s);
        }
        assert_eq!(c.free_blocks(), 8);
        assert_eq!(c.cached_blocks(), 4);
        // The whole pool can be taken again, evicting every cached block.
        let mut all = SeqCache::new();
        c.reserve(&mut all, 32).unwrap();
        let mut got = all.blocks().to_vec();
        got.sort_unstable();
        assert_eq!(got, (0..8).collect::<Vec<u32>>());
        assert_eq!(c.cached_blocks(), 0);
        assert!(c.lookup_prefix(0, &t).is_empty() && c.lookup_prefix(9, &t).is_empty());
        c.release(&mut all);
        assert_eq!(c.free_blocks(), 8);
    }
}
