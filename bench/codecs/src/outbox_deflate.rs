//! The raw deflate the outbox shipped in its wasm until it moved to `src/js/deflate.js`,
//! kept here so the benchmark measures the JS codec against it.
//!
//! The compressor finds matches with a hash chain and one step of lazy matching, then writes
//! one block with Huffman codes built for it (lengths limited by halving the counts until
//! they fit): a few kilobytes of wasm where a general deflater takes tens. The decompressor
//! reads any raw deflate stream (stored, fixed and dynamic blocks), so what other encoders
//! wrote stays readable. No input makes either panic: damage is an `Err`.

/// Lengths 3..=258 as symbols 257..=285: the base of each and its extra bits.
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Distances 1..=32768 as symbols 0..=29.
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order in which a dynamic block lists its code-length code.
const CLEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

const WINDOW: usize = 32 * 1024;
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;
const HASH_BITS: u32 = 14;
/// How many earlier positions a match search looks at: longer chains buy little on JSON.
const CHAIN: usize = 32;
const NONE: u32 = u32::MAX;
/// Tokens per block: bounds what a large payload holds in memory at once (and each block's
/// codes fit its own part).
const BLOCK: usize = 1 << 16;

/// A stream that is not valid deflate, or inflates past the limit.
#[derive(Debug, PartialEq, Eq)]
pub struct Damaged;

/// Writes bits least significant first, as deflate orders them.
struct BitWriter {
    out: Vec<u8>,
    buf: u64,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, bits: u32) {
        self.buf |= u64::from(value) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.buf as u8);
            self.buf >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, which deflate stores most significant bit first.
    fn code(&mut self, code: u32, bits: u32) {
        self.put(code.reverse_bits() >> (32 - bits), bits);
    }
}

fn hash(data: &[u8], i: usize) -> usize {
    let v = u32::from(data[i]) | u32::from(data[i + 1]) << 8 | u32::from(data[i + 2]) << 16;
    (v.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize
}

/// A match (length << 16 | distance) or a literal byte (below 1 << 16).
type Token = u32;

/// Remembers where each 3-byte sequence was last seen, and before that within the window
/// (`prev` is a ring over the window, so memory stays the same for any input size).
struct Matcher<'a> {
    data: &'a [u8],
    head: Vec<u32>,
    prev: Vec<u32>,
    /// Positions before this one are in the chains.
    next: usize,
}

impl Matcher<'_> {
    /// Adds every position up to `end` (exclusive) to the chains.
    fn insert_to(&mut self, end: usize) {
        let last = self.data.len().saturating_sub(MIN_MATCH - 1);
        while self.next < end.min(last) {
            let h = hash(self.data, self.next);
            self.prev[self.next % WINDOW] = self.head[h];
            self.head[h] = self.next as u32;
            self.next += 1;
        }
        self.next = self.next.max(end);
    }

    /// The longest earlier match for position `i`, as (length, distance).
    fn longest(&self, i: usize) -> (usize, usize) {
        let data = self.data;
        if i + MIN_MATCH > data.len() {
            return (0, 0);
        }
        let max = (data.len() - i).min(MAX_MATCH);
        let (mut best, mut dist) = (0, 0);
        let mut cand = self.head[hash(data, i)];
        for _ in 0..CHAIN {
            if cand == NONE || i - cand as usize > WINDOW {
                break;
            }
            let c = cand as usize;
            if data[c + best.min(max - 1)] == data[i + best.min(max - 1)] {
                let len = data[c..c + max]
                    .iter()
                    .zip(&data[i..i + max])
                    .take_while(|(a, b)| a == b)
                    .count();
                if len > best {
                    (best, dist) = (len, i - c);
                    if len == max {
                        break;
                    }
                }
            }
            // A slot the ring has reused holds a later position: the chain ends there.
            let next = self.prev[c % WINDOW];
            if next != NONE && next >= cand {
                break;
            }
            cand = next;
        }
        if best >= MIN_MATCH {
            (best, dist)
        } else {
            (0, 0)
        }
    }

    /// Literals and matches from position `i` on, at most a block of them, into `out`;
    /// returns the position after them.
    fn tokens(&mut self, mut i: usize, out: &mut Vec<Token>) -> usize {
        let data = self.data;
        while i < data.len() && out.len() < BLOCK {
            self.insert_to(i);
            let (len, dist) = self.longest(i);
            // Lazy matching: a longer match one byte on is worth a literal first.
            let lazier = len > 0 && {
                self.insert_to(i + 1);
                self.longest(i + 1).0 > len
            };
            if len == 0 || lazier {
                out.push(Token::from(data[i]));
                i += 1;
            } else {
                out.push((len << 16 | dist) as Token);
                i += len;
            }
        }
        i
    }
}

/// The symbol of a length or distance and what its extra bits hold.
fn symbol(base: &[u16], v: usize) -> (usize, u32) {
    let s = base.iter().rposition(|&b| usize::from(b) <= v).unwrap_or(0);
    (s, (v - usize::from(base[s])) as u32)
}

/// Code lengths of a Huffman code for these counts, none over `limit` bits. There are at
/// most 2^`limit` counts (deflate's alphabets: 286 for 15 bits, 19 for 7), or no code fits.
fn code_lengths(counts: &[u32], limit: u32) -> Vec<u8> {
    let mut f = counts.to_vec();
    // Every tree gets two codes at least: a decoder needs one bit even for a lone code.
    for s in 0..2 {
        if f.iter().filter(|&&c| c > 0).count() < 2 && f[s] == 0 {
            f[s] = 1;
        }
    }
    loop {
        // Count and symbol in one u64, sorted by count (the sort `metrics` uses too: one
        // copy of its code in the wasm).
        let mut leaves: Vec<u64> = f
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(s, &c)| u64::from(c) << 32 | s as u64)
            .collect();
        leaves.sort_unstable();
        let n = leaves.len();
        // Two queues: leaves by weight, then the merged nodes, which come out in weight order.
        let mut weight: Vec<u64> = leaves.iter().map(|&l| l >> 32).collect();
        let mut parent = vec![0; 2 * n - 1];
        let (mut i, mut j) = (0, n);
        for k in n..2 * n - 1 {
            let mut pair = [0; 2];
            for p in &mut pair {
                *p = if i < n && (j == k || weight[i] <= weight[j]) {
                    i += 1;
                    i - 1
                } else {
                    j += 1;
                    j - 1
                };
            }
            weight.push(weight[pair[0]] + weight[pair[1]]);
            parent[pair[0]] = k;
            parent[pair[1]] = k;
        }
        let mut depth = vec![0u32; 2 * n - 1];
        for k in (0..2 * n - 2).rev() {
            depth[k] = depth[parent[k]] + 1;
        }
        if depth[..n].iter().all(|&d| d <= limit) {
            let mut out = vec![0; counts.len()];
            for (k, &l) in leaves.iter().enumerate() {
                out[l as u32 as usize] = depth[k] as u8;
            }
            return out;
        }
        // Flatter counts make a shallower tree; all ones make a balanced one.
        for c in f.iter_mut().filter(|c| **c > 0) {
            *c = (*c >> 1).max(1);
        }
    }
}

/// The canonical codes for these lengths (RFC 1951, 3.2.2).
fn canonical(lengths: &[u8]) -> Result<Vec<u32>, Damaged> {
    let mut count = [0i32; 16];
    for &l in lengths {
        count[usize::from(l)] += 1;
    }
    count[0] = 0;
    let mut next = [0u32; 16];
    let (mut code, mut left) = (0u32, 1i32);
    for len in 1..16 {
        left = (left << 1) - count[len];
        if left < 0 {
            return Err(Damaged); // more codes than the lengths allow
        }
        code = (code + count[len - 1] as u32) << 1;
        next[len] = code;
    }
    Ok(lengths
        .iter()
        .map(|&l| {
            let c = next[usize::from(l)];
            next[usize::from(l)] += 1;
            c
        })
        .collect())
}

/// A code being written: each symbol's length and code.
struct Writing {
    lengths: Vec<u8>,
    codes: Vec<u32>,
}

impl Writing {
    fn new(counts: &[u32], limit: u32) -> Writing {
        let lengths = code_lengths(counts, limit);
        let codes = canonical(&lengths).unwrap_or_default();
        Writing { lengths, codes }
    }

    fn put(&self, w: &mut BitWriter, sym: usize) {
        w.code(self.codes[sym], u32::from(self.lengths[sym]));
    }

    /// How many symbols the header lists: all up to the last with a code.
    fn used(&self, at_least: usize) -> usize {
        self.lengths
            .iter()
            .rposition(|&l| l > 0)
            .map_or(0, |p| p + 1)
            .max(at_least)
    }
}

/// `data` as raw deflate: blocks with Huffman codes built for each.
pub fn compress(data: &[u8]) -> Vec<u8> {
    let mut w = BitWriter {
        out: Vec::with_capacity(data.len() / 3 + 64),
        buf: 0,
        n: 0,
    };
    let mut m = Matcher {
        data,
        head: vec![NONE; 1 << HASH_BITS],
        prev: vec![NONE; WINDOW],
        next: 0,
    };
    let mut tokens = Vec::with_capacity(BLOCK.min(data.len()));
    let mut i = 0;
    loop {
        tokens.clear();
        i = m.tokens(i, &mut tokens);
        let last = i == data.len();
        write_block(&mut w, &tokens, last);
        if last {
            w.put(0, 7); // flushes the last partial byte
            return w.out;
        }
    }
}

/// One block of `tokens` with its own codes.
fn write_block(w: &mut BitWriter, tokens: &[Token], last: bool) {
    let mut lit = [0u32; 286];
    let mut dist = [0u32; 30];
    lit[256] = 1;
    for &t in tokens {
        if t < 1 << 16 {
            lit[t as usize] += 1;
        } else {
            lit[257 + symbol(&LEN_BASE, (t >> 16) as usize).0] += 1;
            dist[symbol(&DIST_BASE, (t & 0xffff) as usize).0] += 1;
        }
    }
    let (lit, dist) = (Writing::new(&lit, 15), Writing::new(&dist, 15));
    let (nlit, ndist) = (lit.used(257), dist.used(1));

    // The lengths of both codes, run-length coded: 16 repeats the last 3-6 times, 17 and
    // 18 write 3-10 and 11-138 zeros.
    let lengths: Vec<u8> = lit.lengths[..nlit]
        .iter()
        .chain(&dist.lengths[..ndist])
        .copied()
        .collect();
    let mut runs: Vec<(usize, u32)> = Vec::new();
    let mut k = 0;
    while k < lengths.len() {
        let v = lengths[k];
        let run = lengths[k..].iter().take_while(|&&x| x == v).count();
        if v == 0 && run >= 3 {
            let r = run.min(138);
            runs.push(if r >= 11 {
                (18, r as u32 - 11)
            } else {
                (17, r as u32 - 3)
            });
            k += r;
            continue;
        }
        runs.push((usize::from(v), 0));
        k += 1;
        let mut rest = run - 1;
        while v > 0 && rest >= 3 {
            let r = rest.min(6);
            runs.push((16, r as u32 - 3));
            rest -= r;
            k += r;
        }
    }
    let mut counts = [0u32; 19];
    for &(sym, _) in &runs {
        counts[sym] += 1;
    }
    let clen = Writing::new(&counts, 7);
    let nclen = CLEN_ORDER
        .iter()
        .rposition(|&s| clen.lengths[s] > 0)
        .map_or(0, |p| p + 1)
        .max(4);

    w.put(u32::from(last) | 0b100, 3); // dynamic codes
    w.put((nlit - 257) as u32, 5);
    w.put((ndist - 1) as u32, 5);
    w.put((nclen - 4) as u32, 4);
    for &s in &CLEN_ORDER[..nclen] {
        w.put(u32::from(clen.lengths[s]), 3);
    }
    for &(sym, extra) in &runs {
        clen.put(w, sym);
        match sym {
            16 => w.put(extra, 2),
            17 => w.put(extra, 3),
            18 => w.put(extra, 7),
            _ => {}
        }
    }
    for &t in tokens {
        if t < 1 << 16 {
            lit.put(w, t as usize);
            continue;
        }
        let (l, extra) = symbol(&LEN_BASE, (t >> 16) as usize);
        lit.put(w, 257 + l);
        w.put(extra, u32::from(LEN_EXTRA[l]));
        let (d, extra) = symbol(&DIST_BASE, (t & 0xffff) as usize);
        dist.put(w, d);
        w.put(extra, u32::from(DIST_EXTRA[d]));
    }
    lit.put(w, 256);
}

/// Reads bits least significant first; past the end it reads zeros and fails on use.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    n: u32,
}

impl BitReader<'_> {
    fn peek(&mut self, bits: u32) -> u32 {
        while self.n < bits {
            let byte = self.data.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
            self.buf |= u64::from(byte) << self.n;
            self.n += 8;
        }
        (self.buf & ((1 << bits) - 1)) as u32
    }

    fn skip(&mut self, bits: u32) -> Result<(), Damaged> {
        self.buf >>= bits;
        self.n -= bits;
        // Bits consumed may not exceed the bits there are.
        if self.pos * 8 - self.n as usize > self.data.len() * 8 {
            return Err(Damaged);
        }
        Ok(())
    }

    fn take(&mut self, bits: u32) -> Result<u32, Damaged> {
        let v = self.peek(bits);
        self.skip(bits)?;
        Ok(v)
    }
}

/// A canonical Huffman code as a lookup on its next `bits` input bits: each entry is the
/// symbol shifted left by 4 and the code's length (0 where no code matches).
struct Code {
    bits: u32,
    table: Vec<u16>,
}

impl Code {
    fn new(lengths: &[u8]) -> Result<Code, Damaged> {
        let bits = u32::from(lengths.iter().copied().max().unwrap_or(0));
        let mut table = vec![0u16; 1 << bits];
        for (sym, (&len, code)) in lengths.iter().zip(canonical(lengths)?).enumerate() {
            if len == 0 {
                continue;
            }
            let len = u32::from(len);
            let mut at = (code.reverse_bits() >> (32 - len)) as usize;
            while at < table.len() {
                table[at] = (sym as u16) << 4 | len as u16;
                at += 1 << len;
            }
        }
        Ok(Code { bits, table })
    }

    fn decode(&self, r: &mut BitReader) -> Result<usize, Damaged> {
        let entry = self.table[r.peek(self.bits) as usize];
        if entry & 15 == 0 {
            return Err(Damaged);
        }
        r.skip(u32::from(entry & 15))?;
        Ok(usize::from(entry >> 4))
    }
}

fn fixed_codes() -> Result<(Code, Code), Damaged> {
    let mut lit = [8u8; 288];
    lit[144..256].fill(9);
    lit[256..280].fill(7);
    Ok((Code::new(&lit)?, Code::new(&[5; 30])?))
}

fn dynamic_codes(r: &mut BitReader) -> Result<(Code, Code), Damaged> {
    let nlit = r.take(5)? as usize + 257;
    let ndist = r.take(5)? as usize + 1;
    let nclen = r.take(4)? as usize + 4;
    let mut clen = [0u8; 19];
    for &at in &CLEN_ORDER[..nclen] {
        clen[at] = r.take(3)? as u8;
    }
    let clen = Code::new(&clen)?;
    let mut lengths = [0u8; 288 + 32];
    let mut i = 0;
    while i < nlit + ndist {
        let (value, repeat) = match clen.decode(r)? {
            16 if i > 0 => (lengths[i - 1], 3 + r.take(2)?),
            17 => (0, 3 + r.take(3)?),
            18 => (0, 11 + r.take(7)?),
            len @ 0..=15 => (len as u8, 1),
            _ => return Err(Damaged),
        };
        let end = i + repeat as usize;
        if end > nlit + ndist {
            return Err(Damaged);
        }
        lengths[i..end].fill(value);
        i = end;
    }
    if lengths[256] == 0 {
        return Err(Damaged); // no end-of-block code
    }
    Ok((
        Code::new(&lengths[..nlit])?,
        Code::new(&lengths[nlit..nlit + ndist])?,
    ))
}

/// The bytes a raw deflate stream holds, if at most `limit` of them.
pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, Damaged> {
    let mut r = BitReader {
        data,
        pos: 0,
        buf: 0,
        n: 0,
    };
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    loop {
        let last = r.take(1)? == 1;
        match r.take(2)? {
            0 => {
                r.skip(r.n % 8)?;
                let len = r.take(16)?;
                if len != !r.take(16)? & 0xffff || out.len() + len as usize > limit {
                    return Err(Damaged);
                }
                for _ in 0..len {
                    out.push(r.take(8)? as u8);
                }
            }
            kind @ (1 | 2) => {
                let (lit, dist) = if kind == 1 {
                    fixed_codes()?
                } else {
                    dynamic_codes(&mut r)?
                };
                loop {
                    let sym = lit.decode(&mut r)?;
                    if sym < 256 {
                        if out.len() == limit {
                            return Err(Damaged);
                        }
                        out.push(sym as u8);
                        continue;
                    }
                    if sym == 256 {
                        break;
                    }
                    let l = sym - 257;
                    let (Some(&base), Some(&extra)) = (LEN_BASE.get(l), LEN_EXTRA.get(l)) else {
                        return Err(Damaged);
                    };
                    let len = usize::from(base) + r.take(u32::from(extra))? as usize;
                    let d = dist.decode(&mut r)?;
                    let (Some(&base), Some(&extra)) = (DIST_BASE.get(d), DIST_EXTRA.get(d)) else {
                        return Err(Damaged);
                    };
                    let back = usize::from(base) + r.take(u32::from(extra))? as usize;
                    if back > out.len() || out.len() + len > limit {
                        return Err(Damaged);
                    }
                    // Byte by byte: the copy may overlap what it writes.
                    let from = out.len() - back;
                    for k in 0..len {
                        out.push(out[from + k]);
                    }
                }
            }
            _ => return Err(Damaged),
        }
        if last {
            return Ok(out);
        }
    }
}
