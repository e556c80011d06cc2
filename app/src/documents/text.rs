//! Text from a stored file, page by page: the first stage of the pipeline.
//!
//! The kind of a file is decided by its bytes, never by its name alone. PDFs are read with
//! poppler (`pdfinfo`, `pdftotext`); pages without a text layer are rendered (`pdftoppm`) and
//! read by Tesseract, like images. DOCX is unzipped with a bound on the expanded size, HTML is
//! stripped of markup, text and Markdown are read as UTF-8. Every external process runs in a
//! temporary directory of its own, with a timeout, and is killed when dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pdf,
    Png,
    Jpeg,
    Tiff,
    Webp,
    Bmp,
    Gif,
    Text,
    Markdown,
    Html,
    Docx,
    Zip,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub kind: Kind,
    pub mime: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// From 1.
    pub number: u32,
    pub text: String,
    pub ocr: bool,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_pages: u32,
    pub ocr_languages: String,
    pub page_timeout: Duration,
    pub ocr_dpi: u32,
    pub max_text_bytes: usize,
    pub max_pixels: u64,
    pub max_unzipped_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pages: 300,
            ocr_languages: "eng+rus".into(),
            page_timeout: Duration::from_secs(90),
            ocr_dpi: 300,
            max_text_bytes: 10 * 1024 * 1024,
            max_pixels: 80_000_000,
            max_unzipped_bytes: 50 * 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// Not a kind of file Dossier reads; shown to the person.
    #[error("{0}")]
    Unsupported(String),
    /// A supported kind that cannot be read (damaged, protected, too large, too slow); shown
    /// to the person.
    #[error("{0}")]
    Unreadable(String),
    /// Something on our side; worth retrying.
    #[error(transparent)]
    Transient(#[from] anyhow::Error),
}

fn detected(kind: Kind, mime: &'static str) -> Detected {
    Detected { kind, mime }
}

/// Mostly valid UTF-8 and no NUL: text (a few bad bytes are tolerated and replaced).
fn looks_like_text(bytes: &[u8]) -> bool {
    if bytes.contains(&0) {
        return false;
    }
    let lossy = String::from_utf8_lossy(bytes);
    let bad = lossy.matches('\u{FFFD}').count();
    (bad as f64) <= bytes.len() as f64 * 0.005
}

pub fn detect(bytes: &[u8], file_name: &str) -> Detected {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if starts(b"%PDF-") {
        return detected(Kind::Pdf, "application/pdf");
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return detected(Kind::Png, "image/png");
    }
    if starts(b"\xff\xd8\xff") {
        return detected(Kind::Jpeg, "image/jpeg");
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return detected(Kind::Tiff, "image/tiff");
    }
    if bytes.len() > 12 && starts(b"RIFF") && &bytes[8..12] == b"WEBP" {
        return detected(Kind::Webp, "image/webp");
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return detected(Kind::Gif, "image/gif");
    }
    if starts(b"BM") && bytes.len() > 26 && extension == "bmp" {
        return detected(Kind::Bmp, "image/bmp");
    }
    if starts(b"PK\x03\x04") {
        let is_docx = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map(|archive| {
                archive
                    .file_names()
                    .any(|n| n.is_ok_and(|n| n == "word/document.xml"))
            })
            .unwrap_or(false);
        return if is_docx {
            detected(
                Kind::Docx,
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            )
        } else {
            detected(Kind::Zip, "application/zip")
        };
    }
    if !bytes.is_empty() && looks_like_text(bytes) {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_lowercase();
        let head = head.trim_start_matches('\u{feff}').trim_start();
        if head.starts_with("<!doctype html")
            || head.starts_with("<html")
            || matches!(extension.as_str(), "html" | "htm")
        {
            return detected(Kind::Html, "text/html");
        }
        if matches!(extension.as_str(), "md" | "markdown") {
            return detected(Kind::Markdown, "text/markdown");
        }
        return detected(Kind::Text, "text/plain");
    }
    detected(Kind::Unknown, "application/octet-stream")
}

pub fn is_image(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Png | Kind::Jpeg | Kind::Tiff | Kind::Webp | Kind::Bmp | Kind::Gif
    )
}

/// A temporary directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("dossier-text-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).context("failed to create a temporary directory")?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a tool with a timeout; its stdout, or a clear error.
async fn run(
    program: &str,
    args: &[&str],
    timeout: Duration,
    package: &str,
) -> Result<Output, TextError> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(TextError::Transient(anyhow::anyhow!(
                "{program} is not installed (Debian package {package})"
            )));
        }
        Err(error) => {
            return Err(TextError::Transient(
                anyhow::Error::new(error).context(format!("failed to start {program}")),
            ));
        }
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(TextError::Unreadable("it took too long to read".into())),
        Ok(Err(error)) => Err(TextError::Transient(
            anyhow::Error::new(error).context(format!("{program} failed")),
        )),
        Ok(Ok(output)) => Ok(Output {
            success: output.status.success(),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }),
    }
}

struct Output {
    success: bool,
    stdout: Vec<u8>,
    stderr: String,
}

/// Printable text only: no NULs or control characters but newline and tab, no trailing
/// spaces, at most two blank lines in a row.
fn normalise(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line: String = line
            .chars()
            .filter(|c| !c.is_control() || *c == '\t')
            .collect();
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            if blank > 2 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_matches('\n').to_owned()
}

fn finish(mut pages: Vec<Page>, limits: &Limits) -> Vec<Page> {
    let mut budget = limits.max_text_bytes;
    for page in &mut pages {
        page.text = normalise(&page.text);
        if page.text.len() > budget {
            let mut cut = budget;
            while !page.text.is_char_boundary(cut) {
                cut -= 1;
            }
            page.text.truncate(cut);
        }
        budget -= page.text.len();
    }
    pages
}

/// PNG and JPEG dimensions from their headers.
pub fn image_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 24 {
        let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
        return Some((w, h));
    }
    if bytes.starts_with(b"\xff\xd8") {
        let mut i = 2;
        while i + 9 < bytes.len() {
            if bytes[i] != 0xFF {
                i += 1;
                continue;
            }
            let marker = bytes[i + 1];
            let length = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
            if matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
                let h = u32::from(u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]));
                let w = u32::from(u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]));
                return Some((w, h));
            }
            i += 2 + length;
        }
    }
    None
}

async fn ocr(path: &Path, limits: &Limits) -> Result<String, TextError> {
    let path = path.to_string_lossy();
    let output = run(
        "tesseract",
        &[&path, "stdout", "-l", &limits.ocr_languages],
        limits.page_timeout,
        "tesseract-ocr",
    )
    .await?;
    if !output.success {
        return Err(TextError::Unreadable(format!(
            "the image could not be read ({})",
            output
                .stderr
                .lines()
                .last()
                .unwrap_or("tesseract failed")
                .trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

async fn image_page(
    bytes: &[u8],
    number: u32,
    extension: &str,
    scratch: &Scratch,
    limits: &Limits,
) -> Result<Page, TextError> {
    if let Some((w, h)) = image_dimensions(bytes)
        && u64::from(w) * u64::from(h) > limits.max_pixels
    {
        return Err(TextError::Unreadable(format!(
            "the image is too large to read ({w} × {h} pixels)"
        )));
    }
    let path = scratch.0.join(format!("page-{number}.{extension}"));
    tokio::fs::write(&path, bytes)
        .await
        .context("failed to write a temporary file")?;
    Ok(Page {
        number,
        text: ocr(&path, limits).await?,
        ocr: true,
    })
}

fn extension(kind: Kind) -> &'static str {
    match kind {
        Kind::Png => "png",
        Kind::Jpeg => "jpg",
        Kind::Tiff => "tif",
        Kind::Webp => "webp",
        Kind::Bmp => "bmp",
        Kind::Gif => "gif",
        _ => "bin",
    }
}

async fn pdf(bytes: &[u8], scratch: &Scratch, limits: &Limits) -> Result<Vec<Page>, TextError> {
    let file = scratch.0.join("document.pdf");
    tokio::fs::write(&file, bytes)
        .await
        .context("failed to write a temporary file")?;
    let path = file.to_string_lossy().into_owned();
    let info = run("pdfinfo", &[&path], limits.page_timeout, "poppler-utils").await?;
    if !info.success {
        return Err(TextError::Unreadable(
            if info.stderr.contains("Incorrect password") {
                "the PDF is password-protected".into()
            } else {
                "the PDF is damaged".into()
            },
        ));
    }
    let info = String::from_utf8_lossy(&info.stdout);
    let pages: u32 = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if pages == 0 {
        return Err(TextError::Unreadable("the PDF has no pages".into()));
    }
    if pages > limits.max_pages {
        return Err(TextError::Unreadable(format!(
            "the PDF has {pages} pages; at most {} are read",
            limits.max_pages
        )));
    }
    let timeout = limits.page_timeout.saturating_mul(pages.min(10));
    let text = run(
        "pdftotext",
        &["-enc", "UTF-8", &path, "-"],
        timeout,
        "poppler-utils",
    )
    .await?;
    if !text.success {
        return Err(TextError::Unreadable("the PDF is damaged".into()));
    }
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let layers: Vec<&str> = text.split('\u{c}').collect();
    let mut out = Vec::with_capacity(pages as usize);
    for number in 1..=pages {
        let layer = layers.get(number as usize - 1).copied().unwrap_or("");
        let meaningful = layer.chars().filter(|c| c.is_alphanumeric()).count();
        if meaningful >= 20 {
            out.push(Page {
                number,
                text: layer.to_owned(),
                ocr: false,
            });
            continue;
        }
        // No text layer worth the name: a scanned page.
        let prefix = scratch.0.join(format!("scan-{number}"));
        let n = number.to_string();
        let dpi = limits.ocr_dpi.to_string();
        let rendered = run(
            "pdftoppm",
            &[
                "-r",
                &dpi,
                "-gray",
                "-png",
                "-singlefile",
                "-f",
                &n,
                "-l",
                &n,
                &path,
                &prefix.to_string_lossy(),
            ],
            limits.page_timeout,
            "poppler-utils",
        )
        .await?;
        if !rendered.success {
            return Err(TextError::Unreadable(format!(
                "page {number} of the PDF could not be rendered"
            )));
        }
        let image = prefix.with_extension("png");
        let text = ocr(&image, limits).await?;
        let _ = tokio::fs::remove_file(&image).await;
        out.push(Page {
            number,
            text,
            ocr: true,
        });
    }
    Ok(out)
}

fn docx(bytes: &[u8], limits: &Limits) -> Result<Vec<Page>, TextError> {
    use std::io::Read;

    use quick_xml::events::Event;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|_| TextError::Unreadable("the DOCX file is damaged".into()))?;
    let entry = archive
        .by_name("word/document.xml")
        .map_err(|_| TextError::Unsupported("this ZIP archive is not a Word document".into()))?;
    let mut xml = Vec::new();
    entry
        .take(limits.max_unzipped_bytes + 1)
        .read_to_end(&mut xml)
        .map_err(|_| TextError::Unreadable("the DOCX file is damaged".into()))?;
    if xml.len() as u64 > limits.max_unzipped_bytes {
        return Err(TextError::Unreadable(format!(
            "the file expands to more than {} MB (a decompression bomb?)",
            limits.max_unzipped_bytes / (1024 * 1024)
        )));
    }
    let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
    let mut pages = vec![String::new()];
    let mut in_text = false;
    let mut buffer = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buffer)
            .map_err(|_| TextError::Unreadable("the DOCX file is damaged".into()))?;
        match event {
            Event::Start(e) if e.name().0 == "w:t" => in_text = true,
            Event::End(e) if e.name().0 == "w:t" => in_text = false,
            Event::End(e) if e.name().0 == "w:p" => {
                if let Some(page) = pages.last_mut() {
                    page.push('\n');
                }
            }
            Event::Empty(e) | Event::Start(e) if e.name().0 == "w:tab" => {
                if let Some(page) = pages.last_mut() {
                    page.push('\t');
                }
            }
            Event::Empty(e) | Event::Start(e) if matches!(e.name().0, "w:br" | "w:cr") => {
                let page_break = e
                    .attributes()
                    .flatten()
                    .any(|a| a.key.0 == "w:type" && a.value == "page");
                if page_break {
                    pages.push(String::new());
                } else if let Some(page) = pages.last_mut() {
                    page.push('\n');
                }
            }
            Event::Text(t) if in_text => {
                let decoded = t.into_inner().into_owned();
                let text = quick_xml::escape::unescape(&decoded)
                    .map_or_else(|_| decoded.clone(), |t| t.into_owned());
                if let Some(page) = pages.last_mut() {
                    page.push_str(&text);
                }
            }
            Event::GeneralRef(r) if in_text => {
                let name = r.into_inner().into_owned();
                let text = match name.as_str() {
                    "amp" => "&".to_owned(),
                    "lt" => "<".to_owned(),
                    "gt" => ">".to_owned(),
                    "quot" => "\"".to_owned(),
                    "apos" => "'".to_owned(),
                    other => decode_numeric(other).map(String::from).unwrap_or_default(),
                };
                if let Some(page) = pages.last_mut() {
                    page.push_str(&text);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buffer.clear();
    }
    Ok(pages
        .into_iter()
        .enumerate()
        .map(|(i, text)| Page {
            number: u32::try_from(i + 1).unwrap_or(u32::MAX),
            text,
            ocr: false,
        })
        .collect())
}

fn decode_numeric(entity: &str) -> Option<char> {
    let number = entity.strip_prefix('#')?;
    let code = match number.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => number.parse().ok()?,
    };
    char::from_u32(code)
}

/// Visible text of an HTML document: scripts, styles and comments dropped, block elements
/// turned into line breaks, entities decoded.
pub fn html_text(html: &str) -> String {
    const BLOCKS: &[&str] = &[
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "table",
        "section",
        "article",
        "header",
        "footer",
        "title",
        "td",
        "th",
        "blockquote",
        "pre",
        "hr",
    ];
    let mut out = String::with_capacity(html.len());
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while i < html.len() {
        let rest = &html[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map_or(rest.len(), |e| e + 3);
            continue;
        }
        if rest.starts_with('<') {
            let end = rest.find('>').map_or(rest.len(), |e| e + 1);
            let tag = lower[i + 1..i + end.saturating_sub(1).max(1)].trim_start_matches('/');
            let name: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if (name == "script" || name == "style") && !lower[i..].starts_with("</") {
                let close = format!("</{name}");
                i += lower[i..].find(&close).map_or(html.len() - i, |c| c);
                i += html[i..].find('>').map_or(html.len() - i, |e| e + 1);
                continue;
            }
            if BLOCKS.contains(&name.as_str()) {
                out.push('\n');
            }
            i += end;
            continue;
        }
        if rest.starts_with('&')
            && let Some(end) = rest[..rest.len().min(12)].find(';')
        {
            let entity = &rest[1..end];
            let decoded = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "#39" | "apos" => Some('\''),
                "nbsp" => Some(' '),
                other => decode_numeric(other),
            };
            if let Some(c) = decoded {
                out.push(c);
                i += end + 1;
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    let collapsed: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    collapsed.join("\n")
}

fn plain(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.trim_start_matches('\u{feff}').replace('\u{FFFD}', "")
}

pub async fn extract(
    bytes: &[u8],
    detected: Detected,
    limits: &Limits,
) -> Result<Vec<Page>, TextError> {
    if bytes.is_empty() {
        return Err(TextError::Unsupported("the file is empty".into()));
    }
    let pages = match detected.kind {
        Kind::Pdf => {
            let scratch = Scratch::new()?;
            pdf(bytes, &scratch, limits).await?
        }
        kind if is_image(kind) => {
            let scratch = Scratch::new()?;
            vec![image_page(bytes, 1, extension(kind), &scratch, limits).await?]
        }
        Kind::Docx => docx(bytes, limits)?,
        Kind::Html => vec![Page {
            number: 1,
            text: html_text(&plain(bytes)),
            ocr: false,
        }],
        Kind::Text | Kind::Markdown => vec![Page {
            number: 1,
            text: plain(bytes),
            ocr: false,
        }],
        Kind::Zip => {
            return Err(TextError::Unsupported(
                "ZIP archives are not supported".into(),
            ));
        }
        _ => {
            return Err(TextError::Unsupported(format!(
                "this kind of file ({}) is not supported",
                detected.mime
            )));
        }
    };
    Ok(finish(pages, limits))
}

pub async fn extract_album(images: &[Bytes], limits: &Limits) -> Result<Vec<Page>, TextError> {
    let scratch = Scratch::new()?;
    let mut pages = Vec::with_capacity(images.len());
    for (i, bytes) in images.iter().enumerate() {
        let found = detect(bytes, "");
        if !is_image(found.kind) {
            return Err(TextError::Unsupported(
                "an album may only hold images".into(),
            ));
        }
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        pages.push(image_page(bytes, number, extension(found.kind), &scratch, limits).await?);
    }
    Ok(finish(pages, limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], name: &str) -> Result<Vec<Page>, TextError> {
        extract(bytes, detect(bytes, name), &Limits::default()).await
    }

    #[tokio::test]
    async fn pdf_text_layers_are_read_and_scanned_pages_ocrd() {
        let scan = testkit::render_text(
            &["SCANNED PAGE", "Total 42.00 EUR"],
            &testkit::Render::default(),
        );
        let pdf = testkit::pdf(&[
            testkit::PdfPage::Text("Invoice No. 17\nConsulting services for March 2026"),
            testkit::PdfPage::Image(&scan),
        ]);
        let pages = read(&pdf, "x.txt").await.expect("read");
        assert_eq!(pages.len(), 2);
        assert_eq!(
            pages[0].text,
            "Invoice No. 17\nConsulting services for March 2026"
        );
        assert!(!pages[0].ocr);
        assert!(pages[1].ocr, "{pages:?}");
        assert!(pages[1].text.contains("SCANNED PAGE"), "{}", pages[1].text);
        assert!(pages[1].text.contains("42.00"), "{}", pages[1].text);
    }

    #[tokio::test]
    async fn english_and_russian_scans_are_read() {
        let noisy = testkit::Render {
            noise: true,
            ..testkit::Render::default()
        };
        let english = testkit::png(&testkit::render_text(
            &["Passport No. 72 1234567", "Date of birth: 14.07.1985"],
            &noisy,
        ));
        let pages = read(&english, "scan.png").await.expect("read");
        assert!(
            pages[0].ocr && pages[0].text.contains("72 1234567"),
            "{}",
            pages[0].text
        );
        let russian = testkit::png(&testkit::render_text(
            &[
                "Паспорт гражданина Российской Федерации",
                "Номер 45 12 345678",
            ],
            &noisy,
        ));
        let pages = read(&russian, "скан.png").await.expect("read");
        assert!(
            pages[0].text.contains("Паспорт гражданина"),
            "{}",
            pages[0].text
        );
        assert!(pages[0].text.contains("45 12 345678"), "{}", pages[0].text);
    }

    #[tokio::test]
    async fn office_html_and_text_files() {
        let docx = testkit::docx(&["First page & more", "\u{c}", "Second page"]);
        assert_eq!(detect(&docx, "a.bin").kind, Kind::Docx);
        let pages = read(&docx, "a.docx").await.expect("read");
        assert_eq!(pages.len(), 2, "{pages:?}");
        assert_eq!(pages[0].text, "First page & more");
        assert_eq!(pages[1].text, "Second page");
        let bomb = testkit::docx_bomb(60 * 1024 * 1024);
        assert!(
            matches!(read(&bomb, "b.docx").await, Err(TextError::Unreadable(m)) if m.contains("decompression bomb"))
        );
        let html = b"<html><head><title>T</title><style>p{}</style><script>alert(1)</script></head><body><p>Hello &amp; welcome</p><!-- no --><div>Bye&#33;</div></body></html>";
        let pages = read(html, "x.html").await.expect("read");
        assert_eq!(pages[0].text, "T\nHello & welcome\nBye!");
        let mut text = b"caf\xc3\xa9 ".repeat(300);
        text.push(0xff);
        let pages = read(&text, "notes.txt").await.expect("read");
        assert!(pages[0].text.starts_with("café café"));
    }

    #[tokio::test]
    async fn bad_files_get_clear_reasons() {
        assert!(
            matches!(read(b"", "x.pdf").await, Err(TextError::Unsupported(m)) if m.contains("empty"))
        );
        let binary: Vec<u8> = (0..2000u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert_eq!(detect(&binary, "x.pdf").kind, Kind::Unknown);
        assert!(
            matches!(read(&binary, "x.pdf").await, Err(TextError::Unsupported(m)) if m.contains("not supported"))
        );
        let pdf = testkit::text_pdf(&["Hello world, this is a document."]);
        assert!(matches!(
            read(&pdf[..pdf.len() / 3], "x.pdf").await,
            Err(TextError::Unreadable(_))
        ));
        let mut huge = testkit::png(&testkit::render_text(&["x"], &testkit::Render::default()));
        huge[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        assert!(
            matches!(read(&huge, "x.png").await, Err(TextError::Unreadable(m)) if m.contains("too large"))
        );
    }
}
