//! Learning curves: one line a series over epochs 1..=n, with axis titles, round ticks and a
//! legend.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Draw, FONT, picture_methods};

/// Series colours (matplotlib's first four, so the pictures look familiar).
const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// A line chart of named series over epochs, such as the training and validation loss.
/// A value that is not finite (an epoch without validation, a diverged loss) leaves a gap.
///
/// ```
/// use ferrovision::train::Curves;
///
/// let (train, val) = ([2.0, 1.2, 0.9], [2.1, 1.5, 1.3]);
/// let curves = Curves::new("loss", "cross-entropy")
///     .with_series("train", &train)
///     .with_series("val", &val);
/// let svg = curves.svg()?;
/// assert!(svg.contains("epoch") && svg.contains("cross-entropy"));
/// assert_eq!(&curves.png()?[1..4], b"PNG");
/// # Ok::<(), ferrovision::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Curves<'a> {
    title: &'a str,
    y_label: &'a str,
    series: Vec<(&'a str, &'a [f64])>,
}

impl<'a> Curves<'a> {
    /// An empty chart with this title and vertical-axis title (the horizontal axis is the
    /// epoch).
    pub fn new(title: &'a str, y_label: &'a str) -> Self {
        Self {
            title,
            y_label,
            series: Vec::new(),
        }
    }

    /// Adds a series: `values[i]` is the value after epoch `i + 1`.
    pub fn with_series(mut self, name: &'a str, values: &'a [f64]) -> Self {
        self.series.push((name, values));
        self
    }

    /// The number of epochs on the horizontal axis (at least 1).
    fn epochs(&self) -> u32 {
        let longest = self.series.iter().map(|(_, v)| v.len()).max();
        longest.unwrap_or(0).max(1) as u32
    }

    /// Where the legend hides no line: the lower right corner when the series end in the upper
    /// half of the axis (a rising accuracy), else the upper right (a falling loss).
    fn legend_corner(&self, lo: f64, hi: f64) -> SeriesLabelPosition {
        let ends: Vec<f64> = self
            .series
            .iter()
            .filter_map(|(_, v)| v.iter().rev().find(|v| v.is_finite()).copied())
            .collect();
        let mean = ends.iter().sum::<f64>() / ends.len().max(1) as f64;
        if !ends.is_empty() && (mean - lo) / (hi - lo) > 0.5 {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        }
    }

    /// The value axis: from 0 (or the lowest value, if negative) to a little above the
    /// highest finite value.
    fn value_range(&self) -> (f64, f64) {
        let finite = || {
            self.series
                .iter()
                .flat_map(|(_, v)| v.iter().copied())
                .filter(|v| v.is_finite())
        };
        let lo = finite().fold(0.0, f64::min);
        let hi = finite().fold(f64::NEG_INFINITY, f64::max);
        if hi.is_finite() && hi > lo {
            (lo, hi + 0.05 * (hi - lo))
        } else {
            (lo, lo + 1.0)
        }
    }
}

picture_methods!(Curves);

impl Draw for Curves<'_> {
    fn title(&self) -> &str {
        self.title
    }

    fn size(&self) -> (u32, u32) {
        (720, 440)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        area.fill(&WHITE)?;
        let epochs = self.epochs();
        let (lo, hi) = self.value_range();
        let mut chart = ChartBuilder::on(area)
            .caption(self.title, (FONT, 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            // One empty epoch either side, so the first and last markers are whole.
            .build_cartesian_2d(0u32..epochs + 1, lo..hi)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(self.y_label)
            .x_labels(epochs.clamp(2, 12) as usize + 2)
            .x_label_formatter(&|&epoch| match epoch {
                0 => String::new(),
                e if e > epochs => String::new(),
                e => e.to_string(),
            })
            .y_labels(6)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .draw()?;
        let mut drawn = 0;
        for (k, (name, values)) in self.series.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let segments = finite_segments(values);
            for segment in &segments {
                chart.draw_series(LineSeries::new(segment.clone(), color.stroke_width(2)))?;
            }
            let points: Vec<(u32, f64)> = segments.into_iter().flatten().collect();
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                });
            drawn += 1;
        }
        if drawn > 0 {
            chart
                .configure_series_labels()
                .position(self.legend_corner(lo, hi))
                .label_font((FONT, 14))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.4))
                .draw()?;
        }
        Ok(())
    }
}

/// The runs of consecutive finite values as `(epoch, value)` points (epochs from 1).
fn finite_segments(values: &[f64]) -> Vec<Vec<(u32, f64)>> {
    let mut segments = vec![Vec::new()];
    for (i, &value) in values.iter().enumerate() {
        if value.is_finite() {
            segments
                .last_mut()
                .expect("never empty")
                .push((i as u32 + 1, value));
        } else if !segments.last().expect("never empty").is_empty() {
            segments.push(Vec::new());
        }
    }
    segments.retain(|s| !s.is_empty());
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_split_a_series_into_segments() {
        let segments = finite_segments(&[1.0, f64::NAN, 2.0, 3.0, f64::INFINITY]);
        assert_eq!(segments, vec![vec![(1, 1.0)], vec![(3, 2.0), (4, 3.0)]]);
        assert!(finite_segments(&[f64::NAN]).is_empty());
    }

    #[test]
    fn the_legend_goes_where_the_lines_do_not_end() {
        let (rising, falling) = ([0.3, 0.8, 0.95], [2.0, 1.0, 0.3]);
        let accuracy = Curves::new("accuracy", "fraction").with_series("val", &rising);
        let (lo, hi) = accuracy.value_range();
        assert_eq!(
            accuracy.legend_corner(lo, hi),
            SeriesLabelPosition::LowerRight
        );
        let loss = Curves::new("loss", "cross-entropy").with_series("train", &falling);
        let (lo, hi) = loss.value_range();
        assert_eq!(loss.legend_corner(lo, hi), SeriesLabelPosition::UpperRight);
    }

    #[test]
    fn the_value_axis_starts_at_zero_and_leaves_headroom() {
        let values = [0.5, 0.9];
        let (lo, hi) = Curves::new("accuracy", "fraction")
            .with_series("val", &values)
            .value_range();
        assert_eq!(lo, 0.0);
        assert!(hi > 0.9 && hi < 1.0, "{hi}");
        let (lo, hi) = Curves::new("empty", "y").value_range();
        assert_eq!((lo, hi), (0.0, 1.0));
    }
}
