//! The confusion matrix as a heat map with class labels, values and a colour scale; past
//! [`MATRIX_CLASSES`] classes, the most frequent confusions as bars instead.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Draw, FONT, picture_methods, shorten, text_size};

/// Classes up to which the whole matrix is drawn.
const MATRIX_CLASSES: usize = 100;
/// Rows of the bar list drawn past [`MATRIX_CLASSES`] (its memory stays O(rows)).
const TOP_CONFUSIONS: usize = 40;
/// Characters of a class name shown (longer names end in an ellipsis).
const NAME_CHARS: usize = 28;
/// The colour of a full cell (the scale runs from white to it).
const FULL: RGBColor = RGBColor(8, 48, 107);
const LABEL_SIZE: f64 = 12.0;
const TITLE_SIZE: f64 = 18.0;
const AXIS_SIZE: f64 = 14.0;

/// What the cells of a [`ConfusionPicture`] show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfusionView {
    /// Image counts; the shade is the count over the largest count.
    Counts,
    /// Each row divided by its total (the share of a true class predicted as each class, in
    /// percent; the diagonal is the recall), as sklearn's `normalize="true"`.
    Normalized,
}

/// The confusion matrix `matrix[true][predicted]` as a heat map: class names on both axes
/// (column names turned upright so long ones are never clipped), each cell's value and a
/// colour scale. Past 100 classes a matrix would be unreadable (and grow with the square of
/// the classes), so the 40 most frequent confusions are drawn as bars instead.
///
/// ```
/// use ferrovision::train::{ConfusionPicture, ConfusionView};
///
/// let classes = ["cat".to_string(), "dog".to_string()];
/// let matrix = [vec![5, 1], vec![0, 4]];
/// let svg = ConfusionPicture::new(&matrix, &classes, ConfusionView::Normalized).svg()?;
/// assert!(svg.contains("cat") && svg.contains("83%"));
/// # Ok::<(), ferrovision::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ConfusionPicture<'a> {
    matrix: &'a [Vec<u64>],
    classes: &'a [String],
    view: ConfusionView,
    title: String,
    /// Past [`MATRIX_CLASSES`], the confusions drawn as bars ([`top_confusions`]), found once.
    bars: Vec<(u64, usize, usize)>,
}

impl<'a> ConfusionPicture<'a> {
    /// The picture of `matrix` (one row a true class, one column a predicted class), with
    /// `classes` naming rows and columns in order (a class without a name shows as `?`).
    pub fn new(matrix: &'a [Vec<u64>], classes: &'a [String], view: ConfusionView) -> Self {
        let title = if matrix.len() > MATRIX_CLASSES {
            let shown = match view {
                ConfusionView::Counts => "images",
                ConfusionView::Normalized => "% of the true class",
            };
            format!(
                "the most frequent confusions of {} classes (true → predicted, {shown})",
                matrix.len()
            )
        } else {
            match view {
                ConfusionView::Counts => "confusion matrix (images)".to_string(),
                ConfusionView::Normalized => "confusion matrix (% of each true class)".to_string(),
            }
        };
        let bars = if matrix.len() > MATRIX_CLASSES {
            top_confusions(matrix)
        } else {
            Vec::new()
        };
        Self {
            matrix,
            classes,
            view,
            title,
            bars,
        }
    }

    fn name(&self, class: usize) -> String {
        shorten(
            self.classes.get(class).map_or("?", String::as_str),
            NAME_CHARS,
        )
    }

    /// The shade (0 = white, 1 = full) and the text of the cell `matrix[i][j]`.
    fn cell(&self, i: usize, j: usize, largest: u64) -> (f64, String) {
        let count = self.matrix[i].get(j).copied().unwrap_or(0);
        match self.view {
            ConfusionView::Counts => (count as f64 / largest.max(1) as f64, count.to_string()),
            ConfusionView::Normalized => {
                let total: u64 = self.matrix[i].iter().sum();
                let share = count as f64 / total.max(1) as f64;
                (share, percent(share))
            }
        }
    }

    fn layout(&self) -> Layout {
        let classes = self.matrix.len();
        let label_width = (0..classes)
            .map(|i| text_size(&self.name(i), LABEL_SIZE).0)
            .max()
            .unwrap_or(0);
        let cell = (560 / classes.max(1) as u32).clamp(14, 56);
        let side = cell * classes as u32;
        let left = 40 + label_width + 8;
        let top = 40 + 24 + label_width + 8;
        let scale_width = 20 + 16 + 8 + text_size("100%", LABEL_SIZE).0.max(48) + 12;
        let title_width = text_size(&self.title, TITLE_SIZE).0 + 32;
        Layout {
            cell,
            side,
            left,
            top,
            width: (left + side + scale_width).max(title_width),
            height: top + side + 24,
        }
    }

    /// The title, centred at the top of a picture `width` pixels wide.
    fn draw_title<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        width: u32,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let style = (FONT, TITLE_SIZE).into_font().color(&BLACK);
        area.draw(&Text::new(
            self.title.as_str(),
            (width as i32 / 2, 12),
            style.pos(Pos::new(HPos::Center, VPos::Top)),
        ))
    }

    /// Draws the matrix, its labels and the colour scale.
    fn draw_matrix<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let Layout {
            cell,
            side,
            left,
            top,
            width,
            ..
        } = self.layout();
        let (cell, side, left, top) = (cell as i32, side as i32, left as i32, top as i32);
        let label = (FONT, LABEL_SIZE).into_font().color(&BLACK);
        let upright = (FONT, LABEL_SIZE)
            .into_font()
            .transform(FontTransform::Rotate270)
            .color(&BLACK);
        let axis = (FONT, AXIS_SIZE).into_font().color(&BLACK);
        self.draw_title(area, width)?;
        area.draw(&Text::new(
            "predicted class",
            (left + side / 2, 44),
            axis.pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
        area.draw(&Text::new(
            "true class",
            (16, top + side / 2),
            (FONT, AXIS_SIZE)
                .into_font()
                .transform(FontTransform::Rotate270)
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        let largest = self.matrix.iter().flatten().copied().max().unwrap_or(0);
        let value_size = (cell as f64 * 0.38).clamp(8.0, 13.0);
        for i in 0..self.matrix.len() {
            let (x, y) = (left + cell * i as i32, top + cell * i as i32);
            area.draw(&Text::new(
                self.name(i),
                (left - 6, y + cell / 2),
                label.pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
            area.draw(&Text::new(
                self.name(i),
                (x + cell / 2, top - 6),
                upright.pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            for j in 0..self.matrix.len() {
                let (shade, text) = self.cell(i, j, largest);
                let x = left + cell * j as i32;
                let corners = [(x, y), (x + cell, y + cell)];
                area.draw(&Rectangle::new(corners, shaded(shade).filled()))?;
                area.draw(&Rectangle::new(corners, RGBColor(190, 190, 190)))?;
                if text_size(&text, value_size).0 as i32 + 2 < cell {
                    let ink = if shade > 0.55 { WHITE } else { BLACK };
                    area.draw(&Text::new(
                        text,
                        (x + cell / 2, y + cell / 2),
                        (FONT, value_size)
                            .into_font()
                            .color(&ink)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    ))?;
                }
            }
        }
        self.draw_scale(area, left + side + 20, top, side, largest)
    }

    /// The colour scale: a vertical bar from white (0, bottom) to full (top), with its ends
    /// and middle labelled.
    fn draw_scale<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        x: i32,
        top: i32,
        side: i32,
        largest: u64,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        for row in 0..side {
            let shade = 1.0 - row as f64 / (side - 1).max(1) as f64;
            area.draw(&PathElement::new(
                vec![(x, top + row), (x + 16, top + row)],
                shaded(shade),
            ))?;
        }
        area.draw(&Rectangle::new(
            [(x, top), (x + 16, top + side)],
            RGBColor(120, 120, 120),
        ))?;
        let ticks = [(1.0, top), (0.5, top + side / 2), (0.0, top + side)];
        for (fraction, y) in ticks {
            let text = match self.view {
                ConfusionView::Counts => format!("{:.0}", fraction * largest as f64),
                ConfusionView::Normalized => percent(fraction),
            };
            area.draw(&Text::new(
                text,
                (x + 24, y),
                (FONT, LABEL_SIZE)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        Ok(())
    }

    fn bar_label(&self, i: usize, j: usize) -> String {
        format!("{} → {}", self.name(i), self.name(j))
    }

    fn bars_layout(&self, rows: &[(u64, usize, usize)]) -> (u32, u32, u32) {
        let label_width = rows
            .iter()
            .map(|&(_, i, j)| text_size(&self.bar_label(i, j), LABEL_SIZE).0)
            .max()
            .unwrap_or(0);
        let left = 16 + label_width + 8;
        let title_width = text_size(&self.title, TITLE_SIZE).0 + 32;
        let width = (left + BAR_WIDTH + 64).max(title_width);
        let height = 48 + BAR_ROW * rows.len().max(1) as u32 + 16;
        (left, width, height)
    }

    /// Draws the most frequent confusions as horizontal bars with their values.
    fn draw_bars<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let rows = &self.bars;
        let (left, width, _) = self.bars_layout(rows);
        self.draw_title(area, width)?;
        let label = (FONT, LABEL_SIZE).into_font().color(&BLACK);
        let largest = rows.first().map_or(1, |r| r.0).max(1) as f64;
        for (r, &(count, i, j)) in rows.iter().enumerate() {
            let y = 48 + (BAR_ROW * r as u32) as i32;
            let length = (BAR_WIDTH as f64 * count as f64 / largest).round() as i32;
            let x = left as i32;
            let middle = y + BAR_ROW as i32 / 2;
            area.draw(&Text::new(
                self.bar_label(i, j),
                (x - 6, middle),
                label.pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
            area.draw(&Rectangle::new(
                [(x, y + 2), (x + length, y + BAR_ROW as i32 - 2)],
                FULL.mix(0.8).filled(),
            ))?;
            let (_, value) = self.cell(i, j, count);
            let value = match self.view {
                ConfusionView::Counts => count.to_string(),
                ConfusionView::Normalized => value,
            };
            area.draw(&Text::new(
                value,
                (x + length + 6, middle),
                label.pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        Ok(())
    }
}

/// Pixels of the longest bar in the bar list.
const BAR_WIDTH: u32 = 320;
/// Pixels of one row of the bar list.
const BAR_ROW: u32 = 20;

/// Where the parts of the matrix picture go, in pixels.
struct Layout {
    cell: u32,
    side: u32,
    left: u32,
    top: u32,
    width: u32,
    height: u32,
}

picture_methods!(ConfusionPicture);

impl Draw for ConfusionPicture<'_> {
    fn title(&self) -> &str {
        &self.title
    }

    fn size(&self) -> (u32, u32) {
        if self.matrix.len() > MATRIX_CLASSES {
            let (_, width, height) = self.bars_layout(&self.bars);
            (width, height)
        } else {
            let layout = self.layout();
            (layout.width, layout.height)
        }
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        area.fill(&WHITE)?;
        if self.matrix.len() > MATRIX_CLASSES {
            self.draw_bars(area)
        } else {
            self.draw_matrix(area)
        }
    }
}

/// The [`TOP_CONFUSIONS`] largest off-diagonal cells as `(count, true, predicted)`, the
/// largest first; memory O(rows) whatever the number of classes.
fn top_confusions(matrix: &[Vec<u64>]) -> Vec<(u64, usize, usize)> {
    let mut top = BinaryHeap::with_capacity(TOP_CONFUSIONS + 1);
    for (i, row) in matrix.iter().enumerate() {
        for (j, &count) in row.iter().enumerate() {
            if i != j && count > 0 {
                top.push(Reverse((count, Reverse(i), Reverse(j))));
                if top.len() > TOP_CONFUSIONS {
                    top.pop();
                }
            }
        }
    }
    let mut rows: Vec<_> = top
        .into_iter()
        .map(|Reverse((count, Reverse(i), Reverse(j)))| (count, i, j))
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    rows
}

/// The colour `shade` of the way from white to [`FULL`].
fn shaded(shade: f64) -> RGBColor {
    let t = shade.clamp(0.0, 1.0);
    let mix = |full: u8| (255.0 + (full as f64 - 255.0) * t).round() as u8;
    RGBColor(mix(FULL.0), mix(FULL.1), mix(FULL.2))
}

/// A share as a whole percentage; a share that is not zero never shows as "0%".
fn percent(share: f64) -> String {
    if share > 0.0 && share < 0.005 {
        "<1%".to_string()
    } else {
        format!("{:.0}%", 100.0 * share)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_confusions_come_first_and_the_diagonal_is_left_out() {
        let matrix = vec![vec![9, 1, 3], vec![2, 9, 0], vec![3, 0, 9]];
        assert_eq!(
            top_confusions(&matrix),
            vec![(3, 0, 2), (3, 2, 0), (2, 1, 0), (1, 0, 1)]
        );
    }

    #[test]
    fn a_normalised_cell_is_its_share_of_the_true_class() {
        let matrix = vec![vec![5, 1], vec![0, 0]];
        let names: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let picture = ConfusionPicture::new(&matrix, &names, ConfusionView::Normalized);
        let (shade, text) = picture.cell(0, 0, 5);
        assert!((shade - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(text, "83%");
        assert_eq!(picture.cell(1, 1, 5), (0.0, "0%".to_string()));
        assert_eq!(percent(0.001), "<1%");
    }
}
