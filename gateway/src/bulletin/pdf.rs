//! The bulletin as a PDF (A4), set in the CJK font the station names (`--bulletin-font`),
//! subset to the glyphs used. The same sections and figures as the page ([`super::html`]),
//! laid out as lines of text and simple tables: first laid out into pages, then drawn.

use krilla::geom::{PathBuilder, Point};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::Stroke;
use krilla::text::{Font, TextDirection};
use krilla::Document;

use super::html::percent_text;
use super::Bulletin;

/// A4 in points, and the margins.
const WIDTH: f32 = 595.28;
const HEIGHT: f32 = 841.89;
const MARGIN: f32 = 50.0;
const BODY: f32 = 10.5;

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the font file is not a TrueType or OpenType font (or collection) krilla can read")]
    Font,
    #[error("writing the PDF failed: {0}")]
    Write(String),
}

/// What is drawn: text at a baseline, or a horizontal rule.
enum Mark {
    Text {
        x: f32,
        y: f32,
        size: f32,
        text: String,
    },
    Rule {
        y: f32,
        width: f32,
    },
}

/// Lays out lines top to bottom, starting a new page when one is full.
struct Layout {
    pages: Vec<Vec<Mark>>,
    y: f32,
}

impl Layout {
    fn new() -> Self {
        Self {
            pages: vec![Vec::new()],
            y: MARGIN,
        }
    }

    /// Room for `height` more points on this page, or a new page.
    fn room(&mut self, height: f32) {
        if self.y + height > HEIGHT - MARGIN {
            self.pages.push(Vec::new());
            self.y = MARGIN;
        }
    }

    fn mark(&mut self, m: Mark) {
        if let Some(page) = self.pages.last_mut() {
            page.push(m);
        }
    }

    /// One line of cells at x offsets, `size` points high.
    fn row(&mut self, cells: &[(f32, String)], size: f32) {
        self.room(size * 1.7);
        self.y += size * 1.3;
        for (x, text) in cells {
            let (x, y) = (MARGIN + x, self.y);
            self.mark(Mark::Text {
                x,
                y,
                size,
                text: text.clone(),
            });
        }
        self.y += size * 0.45;
    }

    /// Text wrapped to the text width, indented by `indent`.
    fn paragraph(&mut self, text: &str, size: f32, indent: f32) {
        // An em to spare: the widths are estimates, and CJK punctuation is full-width.
        for line in wrap(text, (WIDTH - 2.0 * MARGIN - indent) / size - 1.0) {
            self.row(&[(indent, line)], size);
        }
    }

    fn heading(&mut self, text: &str) {
        self.room(40.0);
        self.y += 8.0;
        self.row(&[(0.0, text.to_owned())], 13.0);
        let y = self.y + 1.0;
        self.mark(Mark::Rule {
            y,
            width: WIDTH - 2.0 * MARGIN,
        });
        self.y += 5.0;
    }

    /// A table of equal columns: a header row and value rows.
    fn table(&mut self, rows: &[Vec<String>]) {
        let cols = rows.first().map_or(1, Vec::len).max(1);
        self.table_with(rows, &vec![1.0; cols]);
    }

    /// A table whose columns share the text width by `weights`.
    fn table_with(&mut self, rows: &[Vec<String>], weights: &[f32]) {
        let total: f32 = weights.iter().sum::<f32>().max(1.0);
        let unit = (WIDTH - 2.0 * MARGIN) / total;
        let mut starts = Vec::with_capacity(weights.len());
        let mut x = 0.0;
        for w in weights {
            starts.push((x, w * unit));
            x += w * unit;
        }
        for (i, r) in rows.iter().enumerate() {
            let cells: Vec<(f32, String)> = r
                .iter()
                .zip(&starts)
                .map(|(t, &(x, w))| (x, fit(t, w / BODY - 0.5)))
                .collect();
            self.row(&cells, BODY);
            if i == 0 {
                let y = self.y;
                self.mark(Mark::Rule {
                    y,
                    width: WIDTH - 2.0 * MARGIN,
                });
                self.y += 2.0;
            }
        }
    }
}

/// How wide `c` is, in ems: CJK and full-width forms one, the rest about half.
fn em(c: char) -> f32 {
    if c.is_ascii() {
        0.55
    } else {
        1.0
    }
}

/// `text` in lines at most `ems` wide.
fn wrap(text: &str, ems: f32) -> Vec<String> {
    let mut lines = vec![String::new()];
    let mut width = 0.0;
    for c in text.chars() {
        if width + em(c) > ems && !lines.last().is_some_and(String::is_empty) {
            lines.push(String::new());
            width = 0.0;
        }
        if let Some(l) = lines.last_mut() {
            l.push(c);
        }
        width += em(c);
    }
    lines
}

/// `text` cut to `ems` wide, with `…` if cut (a table cell).
fn fit(text: &str, ems: f32) -> String {
    let lines = wrap(text, ems);
    match lines.as_slice() {
        [one] => one.clone(),
        [first, ..] => {
            let mut s: String = first
                .chars()
                .take(first.chars().count().saturating_sub(1))
                .collect();
            s.push('…');
            s
        }
        [] => String::new(),
    }
}

/// The bulletin as PDF bytes, in `font` (a TrueType/OpenType font or collection's first face).
pub fn render(b: &Bulletin, font: Vec<u8>) -> Result<Vec<u8>, PdfError> {
    let font = Font::new(font.into(), 0).ok_or(PdfError::Font)?;
    let mut l = Layout::new();
    let title = b.title();
    l.row(&[(0.0, title.clone())], 20.0);
    l.y += 4.0;
    l.paragraph(
        &format!(
            "公示期间：{}    责任区：{}    发布日期：{}",
            b.period.label, b.zone, b.issued
        ),
        BODY,
        0.0,
    );

    l.heading("一、警情概况");
    let summary = b.summary();
    for pair in summary.chunks(2) {
        let cells: Vec<(f32, String)> = pair
            .iter()
            .enumerate()
            .map(|(i, (label, value))| (i as f32 * 250.0, format!("{label}：{value}")))
            .collect();
        l.row(&cells, BODY);
    }

    l.heading("二、警情分类");
    let (names, counts): (Vec<String>, Vec<String>) = b
        .categories()
        .into_iter()
        .map(|(n, c)| (n.to_owned(), c.to_string()))
        .unzip();
    l.table(&[
        std::iter::once("类别".to_owned()).chain(names).collect(),
        std::iter::once("已处置".to_owned()).chain(counts).collect(),
    ]);
    l.y += 6.0;
    let (names, counts): (Vec<String>, Vec<String>) = b
        .kinds()
        .into_iter()
        .map(|(n, c)| (n.to_owned(), c.to_string()))
        .unzip();
    l.table(&[
        std::iter::once("报警类型".to_owned())
            .chain(names)
            .collect(),
        std::iter::once("起数".to_owned()).chain(counts).collect(),
    ]);

    l.heading("三、响应时间（自按下报警键起）");
    let mut rows = vec![vec![
        "环节".to_owned(),
        "起数".to_owned(),
        "中位数（P50）".to_owned(),
        "九成以内（P90）".to_owned(),
    ]];
    rows.extend(
        b.responses()
            .into_iter()
            .map(|r| vec![r.step.to_owned(), r.n.to_string(), r.p50, r.p90]),
    );
    l.table_with(&rows, &[1.6, 0.6, 1.0, 1.0]);

    l.heading("四、报警器在线情况");
    let (units, outage, percent) = b.total_coverage();
    l.paragraph(
        &format!(
            "全责任区报警器{units}台，离线累计{outage}分钟，在线率{}。",
            percent_text(percent)
        ),
        BODY,
        0.0,
    );
    if !b.coverage.is_empty() {
        let mut rows = vec![vec![
            "联防组".to_owned(),
            "报警器（台）".to_owned(),
            "离线（分钟）".to_owned(),
            "在线率".to_owned(),
        ]];
        rows.extend(b.coverage.iter().map(|c| {
            vec![
                Bulletin::cluster_label(c),
                c.units.to_string(),
                c.outage_minutes.to_string(),
                percent_text(c.coverage_percent),
            ]
        }));
        l.table_with(&rows, &[2.4, 1.0, 1.0, 0.8]);
    }

    l.heading("五、提醒居民注意");
    for (i, line) in b.watch_for().iter().enumerate() {
        l.paragraph(&format!("{}. {line}", i + 1), BODY, 0.0);
    }

    l.heading("六、联系方式");
    l.paragraph(&b.contact_line(), BODY, 0.0);
    l.y += 10.0;
    l.paragraph(
        "本公示由十户联防系统依据辖区报警记录生成，不含任何居民的姓名、住址和电话。",
        9.0,
        0.0,
    );

    let mut doc = Document::new();
    doc.set_metadata(
        Metadata::new()
            .title(format!("{title}（{}）", b.period.label))
            .language("zh-CN".to_owned()),
    );
    for marks in &l.pages {
        let settings = PageSettings::from_wh(WIDTH, HEIGHT)
            .ok_or_else(|| PdfError::Write("page size".to_owned()))?;
        let mut page = doc.start_page_with(settings);
        let mut surface = page.surface();
        for m in marks {
            match m {
                Mark::Text { x, y, size, text } => surface.draw_text(
                    Point::from_xy(*x, *y),
                    font.clone(),
                    *size,
                    text,
                    false,
                    TextDirection::Auto,
                ),
                Mark::Rule { y, width } => {
                    let mut p = PathBuilder::new();
                    p.move_to(MARGIN, *y);
                    p.line_to(MARGIN + width, *y);
                    if let Some(path) = p.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            width: 0.75,
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                        surface.set_stroke(None);
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    doc.finish().map_err(|e| PdfError::Write(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_wraps_by_width_and_cells_are_cut_with_an_ellipsis() {
        let lines = wrap("一二三四五六七八九十", 4.0);
        assert_eq!(lines, ["一二三四", "五六七八", "九十"]);
        assert_eq!(wrap("", 4.0), [""]);
        assert_eq!(fit("一二三四五六", 4.0), "一二三…");
        assert_eq!(fit("abc", 4.0), "abc");
    }
}
