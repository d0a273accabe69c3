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

/// The confusion matrix (`confusion[true][predicted]`) as a heat map with counts, as SVG.
///
/// ```
/// let svg = ferrovision::train::confusion_svg(&[vec![5, 1], vec![0, 4]], &["cat".into(), "dog".into()]);
/// assert!(svg.contains(">cat<") && svg.contains(">4<"));
/// ```
pub fn confusion_svg(confusion: &[Vec<u64>], classes: &[String]) -> String {
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
