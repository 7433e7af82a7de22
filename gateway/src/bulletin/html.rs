//! The bulletin as a printable page: one HTML document with its own print style (A4, the
//! toolbar hidden on paper, tables kept whole across pages). maud escapes every value.
//! Each figure carries `data-figure` so a test (or a script) finds it without parsing layout.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::Bulletin;

/// The page's style: screen and print alike, A4 on paper.
const STYLE: &str = r#"
@page { size: A4; margin: 16mm 15mm; }
* { box-sizing: border-box; }
body { font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC",
       "PingFang SC", "Microsoft YaHei", sans-serif; color: #111; margin: 0; background: #eee; }
.sheet { width: 210mm; min-height: 297mm; margin: 12px auto; padding: 16mm 15mm;
         background: #fff; box-shadow: 0 1px 4px rgba(0,0,0,.25); }
h1 { font-size: 22pt; text-align: center; margin: 0 0 4mm; letter-spacing: .1em; }
.meta { text-align: center; font-size: 10.5pt; color: #333; margin-bottom: 6mm; }
.meta span { margin: 0 3mm; }
h2 { font-size: 13pt; border-bottom: 1.5pt solid #b00; padding-bottom: 1mm; margin: 6mm 0 3mm; }
table { width: 100%; border-collapse: collapse; font-size: 10.5pt; break-inside: avoid; }
th, td { border: .75pt solid #555; padding: 1.5mm 2mm; text-align: center; }
th { background: #f3f3f3; font-weight: bold; }
td.name { text-align: left; }
ol { margin: 0; padding-left: 6mm; font-size: 11pt; line-height: 1.7; }
.contact { font-size: 11pt; }
.foot { margin-top: 8mm; font-size: 9pt; color: #555; border-top: .5pt solid #999; padding-top: 2mm; }
.toolbar { position: sticky; top: 0; background: #333; color: #fff; padding: 8px 16px;
           font-family: sans-serif; font-size: 14px; }
.toolbar a, .toolbar button { color: #fff; background: #b00; border: 0; padding: 6px 12px;
           margin-right: 8px; font-size: 14px; text-decoration: none; cursor: pointer; }
@media print {
  body { background: #fff; }
  .toolbar { display: none; }
  .sheet { width: auto; min-height: 0; margin: 0; padding: 0; box-shadow: none; }
  h2 { break-after: avoid; }
}
"#;

/// The page; `pdf_href` is where the same bulletin's PDF is (the toolbar's link).
pub fn render(b: &Bulletin, pdf_href: &str) -> String {
    let page: Markup = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (b.title()) "（" (b.period.label) "）" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                div class="toolbar" {
                    button type="button" onclick="window.print()" { "打印 Print" }
                    a href=(pdf_href) download { "下载PDF Download PDF" }
                    "A4 纸张打印 · print on A4"
                }
                main class="sheet" {
                    h1 { (b.title()) }
                    div class="meta" {
                        span { "公示期间：" span data-figure="period" { (b.period.label) } }
                        span { "责任区：" (b.zone) }
                        span { "发布日期：" (b.issued) }
                    }
                    h2 { "一、警情概况" }
                    table {
                        tr { @for (label, _) in b.summary() { th { (label) } } }
                        tr { @for (label, value) in b.summary() { td data-figure=(label) { (value) } } }
                    }
                    h2 { "二、警情分类" }
                    table {
                        tr { th { "类别" } @for (name, _) in b.categories() { th { (name) } } }
                        tr {
                            th { "已处置警情" }
                            @for (name, n) in b.categories() { td data-figure=(format!("category-{name}")) { (n) } }
                        }
                    }
                    p {}
                    table {
                        tr { th { "报警类型" } @for (name, _) in b.kinds() { th { (name) } } }
                        tr {
                            th { "起数" }
                            @for (name, n) in b.kinds() { td data-figure=(format!("kind-{name}")) { (n) } }
                        }
                    }
                    h2 { "三、响应时间（自按下报警键起）" }
                    table {
                        tr { th { "环节" } th { "起数" } th { "中位数（P50）" } th { "九成以内（P90）" } }
                        @for r in b.responses() {
                            tr data-figure=(format!("response-{}", r.step)) {
                                td class="name" { (r.step) }
                                td { (r.n) }
                                td { (r.p50) }
                                td { (r.p90) }
                            }
                        }
                    }
                    h2 { "四、报警器在线情况" }
                    @let (units, outage, percent) = b.total_coverage();
                    p {
                        "全责任区报警器" span data-figure="units" { (units) } "台，离线累计"
                        span data-figure="outage-minutes" { (outage) } "分钟，在线率"
                        span data-figure="coverage" { (percent_text(percent)) } "。"
                    }
                    @if !b.coverage.is_empty() {
                        table {
                            tr { th { "联防组" } th { "报警器（台）" } th { "离线（分钟）" } th { "在线率" } }
                            @for c in &b.coverage {
                                tr data-figure=(format!("cluster-{}", c.cluster)) {
                                    td class="name" { (Bulletin::cluster_label(c)) }
                                    td { (c.units) }
                                    td { (c.outage_minutes) }
                                    td { (percent_text(c.coverage_percent)) }
                                }
                            }
                        }
                    }
                    h2 { "五、提醒居民注意" }
                    ol data-figure="watch-for" { @for line in b.watch_for() { li { (line) } } }
                    h2 { "六、联系方式" }
                    p class="contact" data-figure="contact" { (b.contact_line()) }
                    div class="foot" {
                        "本公示由十户联防系统依据辖区报警记录生成，不含任何居民的姓名、住址和电话。"
                    }
                }
            }
        }
    };
    page.into_string()
}

/// `97.5%`; `—` for a period with no unit-minutes.
pub fn percent_text(p: Option<f64>) -> String {
    p.map_or_else(|| "—".to_owned(), |p| format!("{p:.1}%"))
}
