//! Seeded data augmentation of training batches: the CIFAR recipe of He, Zhang, Ren, Sun 2016
//! (§4.2: "4 pixels are padded on each side, and a 32×32 crop is randomly sampled from the
//! padded image or its horizontal flip"), which the SalUn / "model sparsity" protocol trains
//! with. Each sample's crop offset and flip are drawn from a generator seeded by the
//! augmentation seed, the epoch and the sample's id, so they do not depend on the batch the
//! sample falls in, on the thread count or on the other samples.

use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Random crop with zero padding and random horizontal flip, applied to training batches only
/// (never at evaluation, and not in the unlearning methods' own steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augmentation {
    /// Zero padding on each side before the random crop back to the image size, in pixels
    /// (0: no crop). The padding value is 0 in the model's input space (black for pixels
    /// scaled to [0, 1]).
    pub crop_padding: usize,
    /// Mirror each image left-right with probability 1/2.
    pub horizontal_flip: bool,
    /// Seed of the crop offsets and flips.
    pub seed: u64,
}

impl Augmentation {
    /// Parses `crop+flip` (4-pixel padding), `crop:P`, `flip`, `crop:P+flip` (in any order) or
    /// `none` (no augmentation); `seed` seeds the draws.
    pub fn parse(text: &str, seed: u64) -> Result<Option<Augmentation>> {
        if text == "none" {
            return Ok(None);
        }
        let mut augmentation = Augmentation {
            crop_padding: 0,
            horizontal_flip: false,
            seed,
        };
        let invalid = || {
            Error::invalid(format!(
                "augmentation '{text}' is not understood (expected crop, crop:P, flip, crop+flip or none)"
            ))
        };
        for part in text.split('+') {
            match part.trim().split_once(':') {
                None if part.trim() == "crop" => augmentation.crop_padding = 4,
                None if part.trim() == "flip" => augmentation.horizontal_flip = true,
                Some(("crop", padding)) => {
                    augmentation.crop_padding = match padding.parse::<usize>() {
                        Ok(value) if value > 0 => value,
                        _ => return Err(invalid()),
                    }
                }
                _ => return Err(invalid()),
            }
        }
        Ok(Some(augmentation))
    }

    /// The form [`Augmentation::parse`] reads, e.g. `crop:4+flip`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.crop_padding > 0 {
            parts.push(format!("crop:{}", self.crop_padding));
        }
        if self.horizontal_flip {
            parts.push("flip".to_string());
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join("+")
        }
    }

    /// Checks that images of `shape` can be augmented: a crop needs images (not feature
    /// vectors: height and width above 1) at least as large as the padding.
    pub fn validate(&self, shape: [usize; 3]) -> Result<()> {
        let [_, height, width] = shape;
        if (self.crop_padding > 0 || self.horizontal_flip) && (height < 2 || width < 2) {
            return Err(Error::invalid(format!(
                "augmentation {} needs images, but the data has shape {shape:?}",
                self.describe()
            )));
        }
        if self.crop_padding > height.min(width) {
            return Err(Error::invalid(format!(
                "augmentation crop padding {} is larger than the {height}×{width} images",
                self.crop_padding
            )));
        }
        Ok(())
    }

    /// The crop offset `(dy, dx)` in `0..=2·padding` and the flip drawn for sample `id` in
    /// epoch `epoch`.
    pub fn draw(&self, id: u32, epoch: usize) -> (usize, usize, bool) {
        let mixed = self.seed
            ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(id).wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut rng = ChaCha8Rng::seed_from_u64(mixed);
        let span = 2 * self.crop_padding + 1;
        let dy = rng.random_range(0..span);
        let dx = rng.random_range(0..span);
        let flip = self.horizontal_flip && rng.random_bool(0.5);
        (dy, dx, flip)
    }

    /// Augments `features` (rows of `channels·height·width` values, one per id of `ids`) in
    /// place for epoch `epoch`: each row becomes the `height × width` window at offset
    /// `(dy, dx)` of the image padded with `crop_padding` zeros on each side, mirrored
    /// left-right when its flip is drawn.
    pub fn apply(&self, features: &mut [f32], ids: &[u32], shape: [usize; 3], epoch: usize) {
        let [channels, height, width] = shape;
        let dims = channels * height * width;
        let padding = self.crop_padding as isize;
        let mut source = vec![0.0f32; dims];
        for (row, &id) in features.chunks_exact_mut(dims).zip(ids) {
            let (dy, dx, flip) = self.draw(id, epoch);
            if dy as isize == padding && dx as isize == padding && !flip {
                continue;
            }
            source.copy_from_slice(row);
            for channel in 0..channels {
                let plane = channel * height * width;
                for y in 0..height {
                    let from_y = y as isize + dy as isize - padding;
                    for x in 0..width {
                        // Crop, then flip: output x reads the cropped image at width−1−x.
                        let cropped_x = if flip { width - 1 - x } else { x };
                        let from_x = cropped_x as isize + dx as isize - padding;
                        row[plane + y * width + x] = if (0..height as isize).contains(&from_y)
                            && (0..width as isize).contains(&from_x)
                        {
                            source[plane + from_y as usize * width + from_x as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_describes_and_refuses() {
        let both = Augmentation::parse("crop+flip", 3).unwrap().unwrap();
        assert_eq!(both.crop_padding, 4);
        assert!(both.horizontal_flip);
        assert_eq!(both.seed, 3);
        assert_eq!(both.describe(), "crop:4+flip");
        assert_eq!(
            Augmentation::parse("flip+crop:2", 0)
                .unwrap()
                .unwrap()
                .describe(),
            "crop:2+flip"
        );
        assert!(Augmentation::parse("none", 0).unwrap().is_none());
        for bad in ["rotate", "crop:0", "crop:x", "", "crop+"] {
            assert!(Augmentation::parse(bad, 0).is_err(), "{bad}");
        }
        assert!(both.validate([1, 28, 28]).is_ok());
        assert!(both.validate([784, 1, 1]).is_err());
        let wide = Augmentation::parse("crop:9", 0).unwrap().unwrap();
        assert!(wide.validate([1, 8, 8]).is_err());
    }

    #[test]
    fn crop_and_flip_move_pixels_as_they_say() {
        // A 2-channel 3×4 image with distinct values.
        let shape = [2, 3, 4];
        let image: Vec<f32> = (1..=24).map(|v| v as f32).collect();
        let at = |values: &[f32], c: usize, y: usize, x: usize| values[c * 12 + y * 4 + x];
        // Find seeds whose draws give each case we check, for sample id 7 in epoch 0.
        let augmentation = |seed| Augmentation {
            crop_padding: 1,
            horizontal_flip: true,
            seed,
        };
        let mut checked = [false; 2];
        for seed in 0..200 {
            let aug = augmentation(seed);
            let (dy, dx, flip) = aug.draw(7, 0);
            let mut row = image.clone();
            aug.apply(&mut row, &[7], shape, 0);
            for c in 0..2 {
                for y in 0..3 {
                    for x in 0..4 {
                        let cropped_x = if flip { 3 - x } else { x };
                        let (sy, sx) = (
                            y as isize + dy as isize - 1,
                            cropped_x as isize + dx as isize - 1,
                        );
                        let expected = if (0..3).contains(&sy) && (0..4).contains(&sx) {
                            at(&image, c, sy as usize, sx as usize)
                        } else {
                            0.0
                        };
                        assert_eq!(at(&row, c, y, x), expected);
                    }
                }
            }
            if flip && dy == 1 && dx == 1 {
                // A pure flip: each row reversed.
                assert_eq!(&row[0..4], &[4.0, 3.0, 2.0, 1.0]);
                checked[0] = true;
            }
            if !flip && dy == 0 && dx == 2 {
                // Shifted down by one (a zero row on top) and left by one (zeros on the right).
                assert_eq!(&row[0..4], &[0.0; 4]);
                assert_eq!(&row[4..8], &[2.0, 3.0, 4.0, 0.0]);
                checked[1] = true;
            }
        }
        assert_eq!(checked, [true, true], "the seeds did not cover both cases");
    }

    #[test]
    fn draws_are_seeded_per_sample_and_epoch() {
        let aug = Augmentation {
            crop_padding: 4,
            horizontal_flip: true,
            seed: 11,
        };
        let draws: Vec<_> = (0..64).map(|id| aug.draw(id, 0)).collect();
        assert_eq!(draws, (0..64).map(|id| aug.draw(id, 0)).collect::<Vec<_>>());
        assert_ne!(draws, (0..64).map(|id| aug.draw(id, 1)).collect::<Vec<_>>());
        let other = Augmentation { seed: 12, ..aug };
        assert_ne!(
            draws,
            (0..64).map(|id| other.draw(id, 0)).collect::<Vec<_>>()
        );
        // Offsets cover 0..=8 and both flips occur.
        assert!(draws.iter().any(|d| d.0 == 0) && draws.iter().any(|d| d.0 == 8));
        assert!(draws.iter().any(|d| d.2) && draws.iter().any(|d| !d.2));
        // A row's result depends on its id, not on its place in the batch.
        let shape = [1, 8, 8];
        let rows: Vec<f32> = (0..3 * 64).map(|v| v as f32).collect();
        let mut forward = rows.clone();
        aug.apply(&mut forward, &[1, 2, 3], shape, 0);
        let mut reversed: Vec<f32> = rows[128..].to_vec();
        reversed.extend_from_slice(&rows[64..128]);
        reversed.extend_from_slice(&rows[..64]);
        aug.apply(&mut reversed, &[3, 2, 1], shape, 0);
        assert_eq!(&forward[..64], &reversed[128..]);
        assert_eq!(&forward[128..], &reversed[..64]);
    }
}
