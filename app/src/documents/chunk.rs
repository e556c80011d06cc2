//! Page-aware chunks: a chunk never spans two pages, so every retrieved passage can name its
//! page. Pages are cut at paragraph, then sentence, then word boundaries, with a small overlap.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub page: u32,
    /// 0-based across the whole document.
    pub ordinal: u32,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct ChunkOptions {
    pub target_chars: usize,
    pub max_chars: usize,
    pub overlap_chars: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        // all-MiniLM-L6-v2 reads 256 tokens, about 1,000 characters of English.
        Self {
            target_chars: 700,
            max_chars: 1000,
            overlap_chars: 120,
        }
    }
}

/// Splits text into pieces no longer than `max` characters, preferring to cut after a
/// paragraph break, then a sentence end, then a space.
fn pieces(text: &str, options: &ChunkOptions) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let rest = chars.len() - start;
        if rest <= options.max_chars {
            out.push(chars[start..].iter().collect::<String>());
            break;
        }
        let window = &chars[start..start + options.max_chars];
        let from = options.target_chars.min(window.len()) / 2;
        let cut = (from..window.len())
            .rev()
            .find(|&i| window[i] == '\n' && i > 0 && window[i - 1] == '\n')
            .or_else(|| {
                (from..window.len())
                    .rev()
                    .find(|&i| {
                        matches!(window[i], '.' | '!' | '?' | '\n')
                            && i + 1 < window.len()
                            && window[i + 1].is_whitespace()
                    })
                    .map(|i| i + 1)
            })
            .or_else(|| {
                (from..window.len())
                    .rev()
                    .find(|&i| window[i].is_whitespace())
            })
            .unwrap_or(window.len());
        let cut = cut.max(1);
        out.push(window[..cut].iter().collect::<String>());
        // Step back by the overlap, to a word boundary, but always move forward.
        let mut next = start + cut;
        if options.overlap_chars > 0 && next < chars.len() {
            let mut back = next.saturating_sub(options.overlap_chars).max(start + 1);
            while back < next && !chars[back - 1].is_whitespace() {
                back += 1;
            }
            if back < next {
                next = back;
            }
        }
        start = next;
    }
    out
}

pub fn chunk_pages(pages: &[(u32, &str)], options: &ChunkOptions) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    for (page, text) in pages {
        for piece in pieces(text, options) {
            let trimmed = piece.trim();
            if trimmed.is_empty() {
                continue;
            }
            chunks.push(Chunk {
                page: *page,
                ordinal: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
                text: trimmed.to_owned(),
            });
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_pages_are_one_chunk_each_and_blank_pages_none() {
        let chunks = chunk_pages(
            &[(1, "  Hello world. "), (2, "   "), (3, "Второй лист.")],
            &ChunkOptions::default(),
        );
        assert_eq!(
            chunks,
            vec![
                Chunk {
                    page: 1,
                    ordinal: 0,
                    text: "Hello world.".into()
                },
                Chunk {
                    page: 3,
                    ordinal: 1,
                    text: "Второй лист.".into()
                },
            ]
        );
    }

    #[test]
    fn long_pages_are_cut_with_overlap_and_nothing_lost() {
        let sentence = "Платёж по договору должен быть выполнен в течение тридцати дней. ";
        let text = sentence.repeat(60);
        let options = ChunkOptions::default();
        let chunks = chunk_pages(&[(4, &text)], &options);
        assert!(chunks.len() > 3, "{}", chunks.len());
        assert!(
            chunks
                .iter()
                .all(|c| c.page == 4 && c.text.chars().count() <= options.max_chars)
        );
        for pair in chunks.windows(2) {
            let tail: String = pair[0]
                .text
                .chars()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            assert!(
                pair[1].text.contains(tail.trim()),
                "consecutive chunks overlap"
            );
        }
        let all: String = chunks
            .iter()
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        for word in text.split_whitespace() {
            assert!(all.contains(word));
        }
        let giant = "x".repeat(5000);
        let chunks = chunk_pages(&[(1, &giant)], &options);
        assert!(chunks.iter().all(|c| c.text.len() <= options.max_chars));
        assert_eq!(chunks.iter().map(|c| c.text.len()).sum::<usize>(), 5000);
    }
}
