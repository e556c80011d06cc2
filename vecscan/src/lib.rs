//! The exact nearest-neighbour scan behind Dossier's embedded vector search: every row of a
//! contiguous block of f32 vectors is scored by dot product against the query (for unit
//! vectors, cosine) and the best `k` are kept. The inner loop works on 8 lanes at a time so the
//! compiler vectorises it; large blocks are split across threads. A crate of its own so it is
//! optimised even in dev builds (tests and `make bench` run the same machine code).

/// The dot product of two equally long slices.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut xs = a.chunks_exact(8);
    let mut ys = b.chunks_exact(8);
    for (x, y) in (&mut xs).zip(&mut ys) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

/// The best `k` (index, score) pairs, best first; ties keep the lower index first.
pub fn top_k(scores: impl Iterator<Item = (usize, f32)>, k: usize) -> Vec<(usize, f32)> {
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    for (index, score) in scores {
        if best.len() == k && best.last().is_some_and(|(_, s)| *s >= score) {
            continue;
        }
        let at = best.partition_point(|(_, s)| *s >= score);
        best.insert(at, (index, score));
        best.truncate(k);
    }
    best
}

/// Rows below this are scanned on one thread (spawning costs more than it saves).
const PARALLEL_FROM: usize = 20_000;

/// The `k` rows of `data` (rows of `dims` floats) with the highest dot product with `query`.
pub fn nearest(data: &[f32], dims: usize, query: &[f32], k: usize) -> Vec<(usize, f32)> {
    if dims == 0 || query.len() != dims {
        return Vec::new();
    }
    let rows = data.len() / dims;
    let scan = |from: usize, to: usize| {
        top_k(
            (from..to).map(|row| {
                let start = row * dims;
                (row, dot(query, &data[start..start + dims]))
            }),
            k,
        )
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if rows < PARALLEL_FROM || threads == 1 {
        return scan(0, rows);
    }
    let per = rows.div_ceil(threads);
    let parts: Vec<Vec<(usize, f32)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let from = (t * per).min(rows);
                let to = ((t + 1) * per).min(rows);
                scope.spawn(move || scan(from, to))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut merged: Vec<(usize, f32)> = parts.into_iter().flatten().collect();
    merged.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    merged.truncate(k);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(rows: usize, dims: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..rows * dims)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    fn brute_force(data: &[f32], dims: usize, query: &[f32], k: usize) -> Vec<usize> {
        let mut all: Vec<(usize, f32)> = data
            .chunks_exact(dims)
            .enumerate()
            .map(|(row, v)| (row, v.iter().zip(query).map(|(a, b)| a * b).sum()))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.into_iter().take(k).map(|(row, _)| row).collect()
    }

    #[test]
    fn small_and_parallel_scans_are_exact() {
        for (rows, dims) in [(10, 3), (1000, 17), (50_000, 16)] {
            let data = random(rows, dims, rows as u64);
            let query = random(1, dims, 99);
            let found: Vec<usize> = nearest(&data, dims, &query, 10)
                .into_iter()
                .map(|(row, _)| row)
                .collect();
            assert_eq!(found, brute_force(&data, dims, &query, 10), "{rows}×{dims}");
        }
    }

    #[test]
    fn edge_cases_give_empty_or_short_results() {
        assert!(nearest(&[], 4, &[1.0; 4], 5).is_empty());
        assert!(nearest(&[1.0; 8], 4, &[1.0; 3], 5).is_empty());
        assert_eq!(nearest(&[1.0; 8], 4, &[1.0; 4], 5).len(), 2);
        assert!(top_k([(0, 1.0)].into_iter(), 0).is_empty());
        assert!((dot(&[1.0; 19], &[2.0; 19]) - 38.0).abs() < 1e-5);
    }
}
