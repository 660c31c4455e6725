//! The outbox's deflate as it was in Rust, miniz_oxide's and LZ4 (lz4_flex) over byte arrays, for the
//! compression benchmark.

use wasm_bindgen::prelude::*;

mod outbox_deflate;

#[wasm_bindgen]
pub fn outbox_deflate(data: &[u8]) -> Vec<u8> {
    outbox_deflate::compress(data)
}

#[wasm_bindgen]
pub fn outbox_inflate(data: &[u8]) -> Vec<u8> {
    outbox_deflate::decompress(data, usize::MAX).unwrap_or_default()
}

#[wasm_bindgen]
pub fn deflate(data: &[u8], level: u8) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec(data, level)
}

#[wasm_bindgen]
pub fn inflate(data: &[u8]) -> Vec<u8> {
    miniz_oxide::inflate::decompress_to_vec(data).unwrap_or_default()
}

#[wasm_bindgen]
pub fn lz4(data: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(data)
}

#[wasm_bindgen]
pub fn unlz4(data: &[u8]) -> Vec<u8> {
    lz4_flex::decompress_size_prepended(data).unwrap_or_default()
}
