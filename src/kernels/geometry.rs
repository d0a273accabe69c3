//! The shape of one 2-D convolution, shared by the im2col and Winograd kernels.

/// Shape of one 2-D convolution, NCHW input and `[c_out, c_in / groups, kh, kw]` weight: one
/// group (the dense kernels) or one group per input channel (depthwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub in_size: [usize; 2],
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl ConvGeometry {
    /// Output height and width (PyTorch's floor formula); `None` when the kernel does not fit.
    pub fn out_size(&self) -> Option<[usize; 2]> {
        let side = |d: usize| {
            let span = self.dilation[d] * (self.kernel[d] - 1) + 1;
            let padded = self.in_size[d] + 2 * self.padding[d];
            (padded >= span).then(|| (padded - span) / self.stride[d] + 1)
        };
        Some([side(0)?, side(1)?])
    }

    /// The convolution whose output is this one's input gradient, for stride 1 and dilation 1
    /// with one group and padding under the kernel size: the output gradient `[batch, c_out, h_out, w_out]`
    /// convolved with the flipped, transposed weights (`conv.rs`) and padding `k - 1 - p` gives
    /// `[batch, c_in, h, w]`. `None` for other convolutions (their gradient is scattered).
    pub fn input_gradient_geometry(&self) -> Option<ConvGeometry> {
        let unit = self.stride == [1, 1] && self.dilation == [1, 1];
        let fits = (0..2).all(|d| self.padding[d] < self.kernel[d]);
        if !(unit && fits && self.kernel != [1, 1] && self.groups == 1) {
            return None;
        }
        let gt = ConvGeometry {
            batch: self.batch,
            in_channels: self.out_channels,
            in_size: self.out_size()?,
            out_channels: self.in_channels,
            kernel: self.kernel,
            stride: [1, 1],
            padding: [
                self.kernel[0] - 1 - self.padding[0],
                self.kernel[1] - 1 - self.padding[1],
            ],
            dilation: [1, 1],
            groups: 1,
        };
        (gt.out_size()? == self.in_size).then_some(gt)
    }

    /// Values in one patch: a row of the weight matrix.
    pub fn patch_len(&self) -> usize {
        self.in_channels / self.groups * self.kernel[0] * self.kernel[1]
    }

    pub fn out_pixels(&self) -> usize {
        let [h, w] = self.out_size().expect("checked by the caller");
        h * w
    }
}
