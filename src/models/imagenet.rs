//! The ImageNet-1k category names.

use std::sync::OnceLock;

/// The names, one per line, as `scripts/make_imagenet_categories.py` writes them from the
/// pinned torchvision's weight metadata (torchvision is BSD-3-Clause licensed).
const NAMES: &str = include_str!("imagenet_categories.txt");

/// The 1,000 ImageNet-1k category names in the order of a torchvision ImageNet classifier's
/// outputs: output `i` is `imagenet_categories()[i]`.
///
/// ```
/// let names = ferrovision::models::imagenet_categories();
/// assert_eq!(names.len(), 1000);
/// assert_eq!(names[0], "tench");
/// ```
pub fn imagenet_categories() -> &'static [&'static str] {
    static CATEGORIES: OnceLock<Vec<&'static str>> = OnceLock::new();
    CATEGORIES.get_or_init(|| NAMES.lines().collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_category_is_named_once() {
        let names = super::imagenet_categories();
        assert_eq!(names.len(), 1000);
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), 1000);
        assert!(names.iter().all(|n| !n.is_empty() && n.trim() == *n));
        assert_eq!(names[999], "toilet tissue");
    }
}
