//! Text encodings of imported files. Chinese systems export GBK/GB18030, UTF-8 with or without
//! a BOM, and UTF-16; the encoding is detected from the first bytes, and UTF-8 (or any
//! ASCII-compatible encoding) is read without a decoding pass over the whole stream.

use crate::SourceError;
use encoding_rs::{DecoderResult, Encoding, GB18030, GBK, UTF_16BE, UTF_16LE, UTF_8};
use lector_domain::Msg;
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How many leading bytes of a file are looked at to detect its encoding, format and delimiter.
pub const PREFIX_LEN: usize = 64 * 1024;

/// The encoding of a text that starts with `prefix`: its BOM; else UTF-16 when NUL bytes fall
/// on every other byte (ASCII in UTF-16 without BOM); else UTF-8 when the bytes are valid UTF-8
/// (a sequence cut by the end of the prefix is allowed); else chardetng's guess for Chinese
/// content, with GBK widened to its superset GB18030.
pub fn detect(prefix: &[u8]) -> &'static Encoding {
    if let Some((encoding, _)) = Encoding::for_bom(prefix) {
        return encoding;
    }
    if let Some(encoding) = utf16_without_bom(prefix) {
        return encoding;
    }
    match std::str::from_utf8(prefix) {
        Ok(_) => return UTF_8,
        Err(e) if e.error_len().is_none() => return UTF_8,
        Err(_) => {}
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(prefix, false);
    widen(detector.guess(Some(b"cn"), chardetng::Utf8Detection::Deny))
}

/// The encoding named by a label such as `gbk`, `gb2312`, `utf-8` or `utf-16le`.
pub fn for_label(label: &str) -> Result<&'static Encoding, Msg> {
    Encoding::for_label_no_replacement(label.trim().as_bytes()).map(widen).ok_or_else(|| {
        Msg::new(
            format!("不认识的文本编码“{label}”：请写 utf-8、gbk、gb18030、utf-16le 等"),
            format!("unknown text encoding “{label}”: use utf-8, gbk, gb18030, utf-16le …"),
        )
    })
}

/// The name shown to users (`UTF-8`, `GB18030`, `UTF-16LE`, `Big5` …).
pub fn name(encoding: &'static Encoding) -> &'static str {
    if encoding == GB18030 {
        "GB18030"
    } else {
        encoding.name()
    }
}

/// Whether `prefix`, read as `encoding`, is not text: NUL bytes in a file that is not UTF-16,
/// or more than 5% control characters, or more than a quarter undecodable.
pub fn looks_binary(prefix: &[u8], encoding: &'static Encoding) -> bool {
    let utf16 = encoding == UTF_16LE || encoding == UTF_16BE;
    if !utf16 && prefix.contains(&0) {
        return true;
    }
    let (text, _) = encoding.decode_without_bom_handling(prefix);
    let (mut total, mut control, mut invalid) = (0usize, 0usize, 0usize);
    for c in text.chars() {
        total += 1;
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}') {
            control += 1;
        } else if c == char::REPLACEMENT_CHARACTER {
            invalid += 1;
        }
    }
    control * 20 > total || invalid * 4 > total
}

/// GBK files often hold characters only GB18030 has; decoding with the superset loses nothing.
fn widen(encoding: &'static Encoding) -> &'static Encoding {
    if encoding == GBK {
        GB18030
    } else {
        encoding
    }
}

/// UTF-16 without a BOM, told by ASCII characters' NUL half on one side of each byte pair.
fn utf16_without_bom(prefix: &[u8]) -> Option<&'static Encoding> {
    let pairs = prefix.len() / 2;
    if pairs < 2 {
        return None;
    }
    let (mut even, mut odd) = (0usize, 0usize);
    for pair in prefix.chunks_exact(2) {
        even += usize::from(pair[0] == 0);
        odd += usize::from(pair[1] == 0);
    }
    if odd * 5 >= pairs && even * 10 <= odd {
        Some(UTF_16LE)
    } else if even * 5 >= pairs && odd * 10 <= even {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// How the bytes of one field or line become text.
#[derive(Clone)]
pub(crate) enum CellText {
    /// The stream is the file's own UTF-8.
    Utf8,
    /// The stream is the file's bytes in an ASCII-compatible encoding; each field is decoded alone,
    /// so a field with bytes invalid in it is told apart from its neighbours.
    Legacy(&'static Encoding),
    /// The stream was decoded to UTF-8 on the fly; `malformed` counts sequences replaced by U+FFFD.
    Decoded(Arc<AtomicU64>),
}

impl CellText {
    /// The text of `bytes`, or `None` when they are not valid in the file's encoding.
    pub(crate) fn text(&self, bytes: &[u8]) -> Option<String> {
        match self {
            CellText::Utf8 => std::str::from_utf8(bytes).ok().map(str::to_owned),
            CellText::Legacy(encoding) => encoding.decode_without_bom_handling_and_without_replacement(bytes).map(Cow::into_owned),
            CellText::Decoded(malformed) => {
                let text = std::str::from_utf8(bytes).ok()?;
                if malformed.load(Ordering::Relaxed) > 0 && text.contains(char::REPLACEMENT_CHARACTER) {
                    None
                } else {
                    Some(text.to_owned())
                }
            }
        }
    }
}

/// A text file opened past its BOM.
pub(crate) struct TextFile {
    pub(crate) reader: Box<dyn Read + Send>,
    pub(crate) cells: CellText,
}

/// Opens `path` as text in `encoding`. The bytes are read as they are when the encoding is UTF-8,
/// or ASCII-compatible and `ascii_splits` (the format splits only on bytes below 0x40, which never
/// occur inside a multi-byte character); otherwise the stream is decoded to UTF-8 on the fly.
pub(crate) fn open_text(path: &Path, encoding: &'static Encoding, ascii_splits: bool) -> Result<TextFile, SourceError> {
    let mut file = File::open(path).map_err(|e| unreadable(path, &e))?;
    let mut head = [0u8; 3];
    let got = read_full(&mut file, &mut head).map_err(|e| unreadable(path, &e))?;
    let bom = match Encoding::for_bom(&head[..got]) {
        Some((found, len)) if found == encoding => len,
        _ => 0,
    };
    file.seek(SeekFrom::Start(bom as u64)).map_err(|e| unreadable(path, &e))?;
    if encoding == UTF_8 {
        Ok(TextFile { reader: Box::new(file), cells: CellText::Utf8 })
    } else if encoding.is_ascii_compatible() && ascii_splits {
        Ok(TextFile { reader: Box::new(file), cells: CellText::Legacy(encoding) })
    } else {
        let malformed = Arc::new(AtomicU64::new(0));
        let reader = DecodeReader::new(file, encoding, malformed.clone());
        Ok(TextFile { reader: Box::new(reader), cells: CellText::Decoded(malformed) })
    }
}

/// The whole-source error for a file that cannot be opened or read.
pub(crate) fn unreadable(path: &Path, e: &io::Error) -> SourceError {
    SourceError::whole(Msg::new(format!("无法读取文件 {}：{e}", path.display()), format!("cannot read the file {}: {e}", path.display())))
}

/// Reads until `buf` is full or the end of the file; returns how many bytes were read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Decodes a byte stream to UTF-8 as it is read, writing U+FFFD for malformed sequences and
/// counting them.
struct DecodeReader<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    eof: bool,
    finished: bool,
    output: Vec<u8>,
    out_start: usize,
    out_end: usize,
    malformed: Arc<AtomicU64>,
}

const BUF_LEN: usize = 64 * 1024;
/// Room kept at the end of the output buffer for one U+FFFD.
const REPLACEMENT_ROOM: usize = 3;

impl<R: Read> DecodeReader<R> {
    fn new(inner: R, encoding: &'static Encoding, malformed: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            decoder: encoding.new_decoder_without_bom_handling(),
            input: vec![0; BUF_LEN],
            in_start: 0,
            in_end: 0,
            eof: false,
            finished: false,
            output: vec![0; BUF_LEN + REPLACEMENT_ROOM],
            out_start: 0,
            out_end: 0,
            malformed,
        }
    }
}

impl<R: Read> Read for DecodeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_start < self.out_end {
                let n = buf.len().min(self.out_end - self.out_start);
                buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
                self.out_start += n;
                return Ok(n);
            }
            if self.finished {
                return Ok(0);
            }
            if self.in_start == self.in_end && !self.eof {
                self.in_start = 0;
                self.in_end = loop {
                    match self.inner.read(&mut self.input) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                };
                self.eof = self.in_end == 0;
            }
            let room = self.output.len() - REPLACEMENT_ROOM;
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.in_start..self.in_end],
                &mut self.output[..room],
                self.eof,
            );
            self.in_start += read;
            self.out_start = 0;
            self.out_end = written;
            match result {
                DecoderResult::InputEmpty => self.finished = self.eof,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(_, _) => {
                    let replacement = "\u{FFFD}".as_bytes();
                    self.output[written..written + replacement.len()].copy_from_slice(replacement);
                    self.out_end += replacement.len();
                    self.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Decodes a whole document (JSON) in `encoding`, past its BOM; `None` when any byte is invalid.
pub(crate) fn decode_all(bytes: &[u8], encoding: &'static Encoding) -> Option<String> {
    let body = match Encoding::for_bom(bytes) {
        Some((found, len)) if found == encoding => &bytes[len..],
        _ => bytes,
    };
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(decoder.max_utf8_buffer_length_without_replacement(body.len()).unwrap_or(body.len()));
    let (result, _) = decoder.decode_to_string_without_replacement(body, &mut out, true);
    match result {
        DecoderResult::InputEmpty => Some(out),
        _ => None,
    }
}
