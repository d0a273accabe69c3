//! Pictures of a run, as standalone SVG files: learning curves and the confusion matrix.

use std::fmt::Write;

/// A line chart of named series over epochs 1..=n, as an SVG document.
///
/// ```
/// let svg = ferrovision::train::curves_svg("loss", &[("train", vec![2.0, 1.0]), ("val", vec![2.5, 1.5])]);
/// assert!(svg.starts_with("<svg") && svg.contains("polyline"));
/// ```
pub fn curves_svg(title: &str, series: &[(&str, Vec<f64>)]) -> String {
    const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let (w, h, left, right, top, bottom) = (640.0, 400.0, 60.0, 20.0, 40.0, 40.0);
    let finite = || {
        series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
    };
    let lo = finite().fold(f64::INFINITY, f64::min).min(0.0);
    let mut hi = finite().fold(f64::NEG_INFINITY, f64::max);
    if !hi.is_finite() || hi <= lo {
        hi = lo + 1.0;
    }
    let n = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let x = |i: usize| left + (w - left - right) * i as f64 / (n - 1) as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - (v - lo) / (hi - lo));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">{}</text>\n",
        w / 2.0,
        escape(title)
    );
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" x2=\"{0}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/><text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{v:.3}</text>",
            w - right,
            y(v),
            left - 6.0,
            y(v) + 4.0
        );
    }
    for i in 0..n {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(i),
            h - bottom + 16.0,
            i + 1
        );
    }
    for (k, (name, values)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n\
             <text x=\"{}\" y=\"{}\" fill=\"{color}\">{}</text>",
            points.join(" "),
            left + 10.0 + 90.0 * k as f64,
            h - 8.0,
            escape(name)
        );
    }
    svg + "</svg>\n"
}

/// Classes up to which [`confusion_svg`] draws the whole matrix.
const MATRIX_CLASSES: usize = 100;
/// Rows of the list drawn past [`MATRIX_CLASSES`].
const TOP_CONFUSIONS: usize = 40;

/// The confusion matrix (`confusion[true][predicted]`) as a heat map with counts, as SVG; past
/// 100 classes, a list of the 40 most frequent confusions instead (a matrix would grow with
/// the square of the classes: 16 GB of text at 10,000).
///
/// ```
/// let svg = ferrovision::train::confusion_svg(&[vec![5, 1], vec![0, 4]], &["cat".into(), "dog".into()]);
/// assert!(svg.contains(">cat<") && svg.contains(">4<"));
/// ```
pub fn confusion_svg(confusion: &[Vec<u64>], classes: &[String]) -> String {
    if confusion.len() > MATRIX_CLASSES {
        return top_confusions_svg(confusion, classes, TOP_CONFUSIONS);
    }
    let c = confusion.len().max(1);
    let cell = (480.0 / c as f64).clamp(12.0, 60.0);
    let margin = 110.0;
    let size = margin + cell * c as f64 + 20.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{0}\" y=\"16\" text-anchor=\"middle\">predicted →</text>\n\
         <text x=\"12\" y=\"{0}\" transform=\"rotate(-90 12 {0})\" text-anchor=\"middle\">true →</text>\n",
        margin + cell * c as f64 / 2.0
    );
    for (i, row) in confusion.iter().enumerate() {
        let total = row.iter().sum::<u64>().max(1) as f64;
        let name = classes.get(i).map(String::as_str).unwrap_or("?");
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><text x=\"{:.1}\" y=\"{}\" text-anchor=\"end\" transform=\"rotate(-45 {3:.1} {4})\">{2}</text>",
            margin - 4.0,
            margin + cell * (i as f64 + 0.6),
            escape(name),
            margin + cell * (i as f64 + 0.5),
            margin - 4.0
        );
        for (j, count) in row.iter().enumerate() {
            let shade = 255.0 * (1.0 - *count as f64 / total);
            let text = if shade < 128.0 { "white" } else { "black" };
            let (cx, cy) = (margin + cell * j as f64, margin + cell * i as f64);
            let _ = writeln!(
                svg,
                "<rect x=\"{cx:.1}\" y=\"{cy:.1}\" width=\"{cell:.1}\" height=\"{cell:.1}\" fill=\"rgb({0:.0},{0:.0},255)\" stroke=\"#999\"/><text x=\"{1:.1}\" y=\"{2:.1}\" text-anchor=\"middle\" fill=\"{text}\">{count}</text>",
                shade,
                cx + cell / 2.0,
                cy + cell / 2.0 + 4.0
            );
        }
    }
    svg + "</svg>\n"
}

/// The `k` largest off-diagonal counts, as bars with "true → predicted" labels.
fn top_confusions_svg(confusion: &[Vec<u64>], classes: &[String], k: usize) -> String {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // A min-heap of the k largest (count, true, predicted): memory O(k) whatever the classes.
    let mut top = BinaryHeap::with_capacity(k + 1);
    for (i, row) in confusion.iter().enumerate() {
        for (j, &count) in row.iter().enumerate() {
            if i != j && count > 0 {
                top.push(Reverse((count, Reverse(i), Reverse(j))));
                if top.len() > k {
                    top.pop();
                }
            }
        }
    }
    let mut rows: Vec<(u64, usize, usize)> = top
        .into_iter()
        .map(|Reverse((count, Reverse(i), Reverse(j)))| (count, i, j))
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let name = |i: usize| escape(classes.get(i).map(String::as_str).unwrap_or("?"));
    let largest = rows.first().map_or(1, |r| r.0).max(1) as f64;
    let (row_h, left, bar_w) = (18.0, 330.0, 300.0);
    let height = 40.0 + row_h * rows.len().max(1) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"18\">the {} most frequent confusions of {} classes (true → predicted)</text>\n",
        left + bar_w + 60.0,
        rows.len(),
        confusion.len()
    );
    for (r, (count, i, j)) in rows.iter().enumerate() {
        let y = 30.0 + row_h * r as f64;
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} → {}</text><rect x=\"{left}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"rgb(80,80,255)\"/><text x=\"{:.1}\" y=\"{:.1}\">{count}</text>",
            left - 6.0,
            y + 12.0,
            name(*i),
            name(*j),
            bar_w * *count as f64 / largest,
            row_h - 4.0,
            left + bar_w * *count as f64 / largest + 4.0,
            y + 12.0
        );
    }
    svg + "</svg>\n"
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
