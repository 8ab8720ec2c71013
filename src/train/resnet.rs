//! The residual 1-D CNN of Kachuee, Fazeli & Sarrafzadeh 2018 ("ECG Heartbeat
//! Classification: A Deep Transferable Representation", arXiv 1805.00794,
//! section III.B and figure 2), on one heartbeat row of
//! [`crate::signal::heartbeat`] (187 samples at 125 Hz):
//! ```text
//! signal [B, 1, 187]
//!  -> Conv1d 1->32 k5 (same padding)
//!  -> 5 x residual block:                       lengths 187 -> 92 -> 44 -> 20 -> 8 -> 2
//!       Conv1d 32->32 k5 + ReLU -> Conv1d 32->32 k5
//!       -> + the block's input -> ReLU -> MaxPool k5 stride 2
//!  -> flatten [B, 64] -> Dense 32 + ReLU -> Dense 32 + ReLU -> Dense 5 (logits)
//! ```
//! The paper gives no activation after its first convolution and none is
//! added. Its hyper-parameters are [`ResNetConfig`]'s defaults; the ONNX
//! writer ([`super::onnx::export_resnet`]) rebuilds exactly this graph.

use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::pool::{MaxPool1d, MaxPool1dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig1d, Relu};
use burn::prelude::*;

use super::model::NetOutput;

/// Hyper-parameters of the network (saved in the model card).
#[derive(Config, Debug)]
pub struct ResNetConfig {
    #[config(default = 187)]
    pub input_samples: usize,
    #[config(default = 32)]
    pub filters: usize,
    /// Kernel of every convolution (odd: "same" padding).
    #[config(default = 5)]
    pub kernel: usize,
    #[config(default = 5)]
    pub blocks: usize,
    #[config(default = 5)]
    pub pool_kernel: usize,
    #[config(default = 2)]
    pub pool_stride: usize,
    /// Units of each of the two dense layers.
    #[config(default = 32)]
    pub dense: usize,
    #[config(default = 5)]
    pub classes: usize,
}

impl ResNetConfig {
    /// Samples left after the blocks' pooling (2 for the defaults).
    pub fn pooled_samples(&self) -> usize {
        (0..self.blocks).fold(self.input_samples, |n, _| {
            n.saturating_sub(self.pool_kernel) / self.pool_stride + 1
        })
    }

    /// Checks that every block has something to pool.
    pub fn validate(&self) -> Result<(), String> {
        let mut n = self.input_samples;
        for b in 0..self.blocks {
            if n < self.pool_kernel {
                return Err(format!(
                    "{} input samples leave {n} before block {} and its pool of {}: fewer blocks or a longer input",
                    self.input_samples,
                    b + 1,
                    self.pool_kernel
                ));
            }
            n = (n - self.pool_kernel) / self.pool_stride + 1;
        }
        if self.kernel.is_multiple_of(2) {
            return Err(format!("kernel {} must be odd", self.kernel));
        }
        Ok(())
    }

    /// A freshly initialised network.
    pub fn init(&self, device: &Device) -> ResNet {
        let pad = PaddingConfig1d::Explicit(self.kernel / 2, self.kernel / 2);
        let conv = |inputs: usize| {
            Conv1dConfig::new(inputs, self.filters, self.kernel)
                .with_padding(pad.clone())
                .init(device)
        };
        ResNet {
            stem: conv(1),
            blocks: (0..self.blocks)
                .map(|_| ResidualBlock {
                    conv1: conv(self.filters),
                    conv2: conv(self.filters),
                })
                .collect(),
            pool: MaxPool1dConfig::new(self.pool_kernel)
                .with_stride(self.pool_stride)
                .init(),
            dense1: LinearConfig::new(self.filters * self.pooled_samples(), self.dense)
                .init(device),
            dense2: LinearConfig::new(self.dense, self.dense).init(device),
            head: LinearConfig::new(self.dense, self.classes).init(device),
            relu: Relu::new(),
        }
    }
}

/// Two convolutions and a skip connection.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    pub conv1: Conv1d,
    pub conv2: Conv1d,
}

/// The network.
#[derive(Module, Debug)]
pub struct ResNet {
    pub stem: Conv1d,
    pub blocks: Vec<ResidualBlock>,
    pub pool: MaxPool1d,
    pub dense1: Linear,
    pub dense2: Linear,
    pub head: Linear,
    pub relu: Relu,
}

impl ResNet {
    /// Logits of `[batch, 1, samples]`.
    pub fn forward(&self, signal: Tensor<3>) -> Tensor<2> {
        let mut x = self.stem.forward(signal);
        for block in &self.blocks {
            let y = self.relu.forward(block.conv1.forward(x.clone()));
            let y = block.conv2.forward(y);
            x = self.pool.forward(self.relu.forward(y + x));
        }
        let [batch, channels, samples] = x.dims();
        let flat = x.reshape([batch, channels * samples]);
        let h = self.relu.forward(self.dense1.forward(flat));
        let h = self.relu.forward(self.dense2.forward(h));
        self.head.forward(h)
    }
}

impl super::training::Classifier for ResNet {
    fn output(&self, signal: Tensor<3>, _features: Option<Tensor<2>>) -> NetOutput {
        NetOutput {
            logits: self.forward(signal),
            attention: None,
        }
    }

    fn freeze_backbone(mut self) -> Self {
        self.stem = self.stem.no_grad();
        self.blocks = self.blocks.no_grad();
        self
    }

    fn with_new_head(mut self, classes: usize, device: &Device) -> Self {
        self.head = super::training::relinked(&self.head, classes, device);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers_lengths() {
        let cfg = ResNetConfig::new();
        assert_eq!(cfg.pooled_samples(), 2);
        cfg.validate().unwrap();
        assert!(ResNetConfig::new().with_blocks(7).validate().is_err());
        assert!(ResNetConfig::new().with_kernel(4).validate().is_err());
        let device = Device::flex();
        let net = cfg.init(&device);
        let x = Tensor::<3>::zeros([3, 1, 187], &device);
        assert_eq!(net.forward(x).dims(), [3, 5]);
    }
}
