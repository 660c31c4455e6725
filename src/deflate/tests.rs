use super::*;
use proptest::prelude::*;

/// JSON shaped like an app's payload: repeated keys, words, ids.
fn json(seed: u64, items: usize) -> Vec<u8> {
    let words = [
        "alpha",
        "site",
        "inspection",
        "done",
        "the",
        "north",
        "gate",
        "valve",
        "ok",
    ];
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut s = String::from("{\"formId\":\"site-inspection-v3\",\"answers\":[");
    for i in 0..items {
        let text: Vec<&str> = (0..6)
            .map(|_| words[next() as usize % words.len()])
            .collect();
        s += &format!(
            "{{\"questionId\":\"q-{i}\",\"id\":\"{:016x}\",\"value\":\"{}\",\"flagged\":{}}},",
            next(),
            text.join(" "),
            next() % 7 == 0
        );
    }
    s += "]}";
    s.into_bytes()
}

fn text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000),
        // Few distinct bytes: long and overlapping matches, runs past 258.
        prop::collection::vec(0u8..3, 0..6000),
        (any::<u64>(), 0usize..80).prop_map(|(seed, n)| json(seed, n)),
    ]
}

#[test]
fn json_shrinks_to_well_under_half() {
    let data = json(7, 40);
    let packed = compress(&data);
    assert!(
        packed.len() * 3 < data.len(),
        "{} of {}",
        packed.len(),
        data.len()
    );
    assert_eq!(decompress(&packed, data.len()).unwrap(), data);
}

#[test]
fn empty_and_tiny_inputs_round_trip() {
    for data in [&b""[..], b"a", b"ab", b"abc", b"aaaa"] {
        assert_eq!(decompress(&compress(data), 10).unwrap(), data);
    }
}

/// Pseudo-random bytes, which match nothing by chance.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn large_inputs_span_several_blocks_and_the_whole_window() {
    // 200,000 literals: four blocks of at most 65,536 tokens.
    let mut data = noise(1, 200_000);
    // A repeat exactly as far back as deflate reaches, one just beyond, and JSON.
    let far = noise(2, 32_768);
    data.extend_from_slice(&far);
    data.extend_from_slice(&far);
    let beyond = noise(3, 32_769);
    data.extend_from_slice(&beyond);
    data.extend_from_slice(&beyond);
    data.extend(json(9, 2000));
    let packed = compress(&data);
    assert_eq!(decompress(&packed, data.len()).unwrap(), data);
    assert_eq!(
        miniz_oxide::inflate::decompress_to_vec(&packed).unwrap(),
        data
    );
    // The repeat 32,768 back costs next to nothing (the one beyond cannot be matched).
    let once = [
        &noise(1, 200_000)[..],
        &far,
        &beyond,
        &beyond,
        &json(9, 2000),
    ]
    .concat();
    assert!(packed.len() < compress(&once).len() + 2_000);
}

#[test]
fn the_limit_is_a_damage_not_an_allocation() {
    let data = vec![b'x'; 100_000];
    let packed = compress(&data);
    assert!(packed.len() < 1000);
    assert_eq!(decompress(&packed, 99_999), Err(Damaged));
    assert_eq!(decompress(&packed, 100_000).unwrap(), data);
}

#[test]
fn streams_that_end_early_or_lie_are_damaged() {
    let data = json(3, 30);
    let packed = compress(&data);
    for cut in [0, 1, packed.len() / 2, packed.len() - 1] {
        assert_eq!(
            decompress(&packed[..cut], usize::MAX),
            Err(Damaged),
            "cut at {cut}"
        );
    }
    // A distance further back than anything written so far.
    let mut w = BitWriter {
        out: Vec::new(),
        buf: 0,
        n: 0,
    };
    w.put(0b011, 3); // the final block, fixed codes
    w.code(0x30 + u32::from(b'a'), 8);
    w.code(1, 7); // length 3
    w.code(1, 5); // distance 2
    w.code(0, 7); // end of block
    w.put(0, 7);
    assert_eq!(decompress(&w.out, 100), Err(Damaged));
    // Block type 3 is reserved; a stored block's length must match its complement.
    assert_eq!(decompress(&[0b111], 100), Err(Damaged));
    assert_eq!(decompress(&[1, 2, 0, 0, 0, b'h', b'i'], 100), Err(Damaged));
    assert_eq!(
        decompress(&[1, 2, 0, 0xfd, 0xff, b'h', b'i'], 100).unwrap(),
        b"hi"
    );
}

#[test]
fn the_deepest_tree_is_cut_to_the_limit() {
    // Fibonacci counts make the deepest Huffman tree there is: 30 symbols, 29 levels.
    let mut counts = vec![1u32, 1];
    while counts.len() < 30 {
        counts.push(counts[counts.len() - 1] + counts[counts.len() - 2]);
    }
    let lengths = code_lengths(&counts, 15);
    assert!(
        lengths.iter().all(|&l| (1..=15).contains(&l)),
        "{lengths:?}"
    );
    assert!(canonical(&lengths).is_ok());
    assert!(code_lengths(&counts, 7)
        .iter()
        .all(|&l| (1..=7).contains(&l)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn round_trips(data in text()) {
        prop_assert_eq!(decompress(&compress(&data), data.len()).unwrap(), data);
    }

    /// What this writes is standard deflate: another implementation reads it.
    #[test]
    fn miniz_reads_what_this_writes(data in text()) {
        prop_assert_eq!(miniz_oxide::inflate::decompress_to_vec(&compress(&data)).unwrap(), data);
    }

    /// Stored, fixed and dynamic blocks as a general deflater writes them (and as this
    /// crate wrote payloads before it had its own compressor) are read back.
    #[test]
    fn reads_what_miniz_writes(data in text(), level in prop::sample::select(vec![0u8, 1, 6, 9])) {
        let packed = miniz_oxide::deflate::compress_to_vec(&data, level);
        prop_assert_eq!(decompress(&packed, data.len()).unwrap(), data);
    }

    /// Every counted symbol gets a code (and at least two symbols do), none longer than
    /// the limit, and the lengths form a prefix code. Deflate's alphabets fit their limits:
    /// at most 286 symbols in 15 bits, 19 in 7.
    #[test]
    fn code_lengths_are_a_prefix_code(counts in prop::collection::vec(prop_oneof![Just(0u32), 1u32..1000, any::<u32>()], 2..300), limit in 9u32..=15) {
        let lengths = code_lengths(&counts, limit);
        for (c, l) in counts.iter().zip(&lengths) {
            prop_assert!(*c == 0 || *l > 0);
            prop_assert!(u32::from(*l) <= limit);
        }
        prop_assert!(lengths.iter().filter(|&&l| l > 0).count() >= 2);
        prop_assert!(canonical(&lengths).is_ok());
    }

    /// Altered or random bytes give an error or some bytes, never a panic.
    #[test]
    fn damage_never_panics(data in text(), at in any::<prop::sample::Index>(), flip in 1u8..=255, noise in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut packed = miniz_oxide::deflate::compress_to_vec(&data, 6);
        let i = at.index(packed.len());
        packed[i] ^= flip;
        let _ = decompress(&packed, 1 << 20);
        let _ = decompress(&noise, 1 << 20);
    }
}
