//! A CRT-Net-style network (Liu et al. 2021, "CRT-Net: a generalized and
//! scalable framework for the computer-aided diagnosis of electrocardiogram
//! signals", arXiv 2105.13619) on one heartbeat row: convolution blocks for
//! the waves' shapes, a bidirectional GRU for their order, a Transformer
//! encoder layer (8 heads) over the GRU's states, global average pooling and
//! a dense head. Scaled to a 187-sample beat and these 2 cores (the paper's
//! blocks and widths are for 12-lead 10 s records):
//! ```text
//! signal [B, 1, 187]
//!  -> Conv1d 1->32 k5 (same) + ReLU + MaxPool 2   [B, 32, 93]
//!  -> Conv1d 32->64 k5 (same) + ReLU + MaxPool 2  [B, 64, 46]
//!  -> BiGRU 2 x 32 over the 46 steps                [B, 46, 64]
//!  -> Transformer encoder layer (post-norm): x = LN(x + MHA_8(x)); x = LN(x + FF(x)), FF 64->128->64 ReLU
//!  -> mean over steps [B, 64] -> Dense 32 + ReLU -> Dense 5 (logits)
//! ```
//! burn's [`BiGru`] (reset after the hidden product) is ONNX's `GRU` with
//! `linear_before_reset = 1`, bidirectional; the writer is
//! [`super::onnx::export_crt_net`].

use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::pool::{MaxPool1d, MaxPool1dConfig};
use burn::nn::{
    BiGru, BiGruConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig1d, Relu,
};
use burn::prelude::*;

use super::model::NetOutput;

/// Hyper-parameters of the network (saved in the model card).
#[derive(Config, Debug)]
pub struct CrtNetConfig {
    #[config(default = 187)]
    pub input_samples: usize,
    #[config(default = 32)]
    pub conv1_filters: usize,
    /// Also the GRU's input width and the encoder's width (2 x `gru_hidden`).
    #[config(default = 64)]
    pub conv2_filters: usize,
    #[config(default = 5)]
    pub kernel: usize,
    /// Hidden units of each GRU direction.
    #[config(default = 32)]
    pub gru_hidden: usize,
    #[config(default = 8)]
    pub heads: usize,
    #[config(default = 128)]
    pub feed_forward: usize,
    #[config(default = 1e-5)]
    pub layer_norm_epsilon: f64,
    #[config(default = 32)]
    pub dense: usize,
    #[config(default = 5)]
    pub classes: usize,
}

impl CrtNetConfig {
    /// The encoder's width.
    pub fn d_model(&self) -> usize {
        2 * self.gru_hidden
    }

    /// A freshly initialised network.
    pub fn init(&self, device: &Device) -> CrtNet {
        let pad = PaddingConfig1d::Explicit(self.kernel / 2, self.kernel / 2);
        let d = self.d_model();
        let norm = || {
            LayerNormConfig::new(d)
                .with_epsilon(self.layer_norm_epsilon)
                .init(device)
        };
        CrtNet {
            conv1: Conv1dConfig::new(1, self.conv1_filters, self.kernel)
                .with_padding(pad.clone())
                .init(device),
            conv2: Conv1dConfig::new(self.conv1_filters, self.conv2_filters, self.kernel)
                .with_padding(pad)
                .init(device),
            pool: MaxPool1dConfig::new(2).init(),
            gru: BiGruConfig::new(self.conv2_filters, self.gru_hidden, true).init(device),
            attention: MultiHeadAttentionConfig::new(d, self.heads)
                .with_dropout(0.0)
                .init(device),
            norm1: norm(),
            ff1: LinearConfig::new(d, self.feed_forward).init(device),
            ff2: LinearConfig::new(self.feed_forward, d).init(device),
            norm2: norm(),
            dense: LinearConfig::new(d, self.dense).init(device),
            head: LinearConfig::new(self.dense, self.classes).init(device),
            relu: Relu::new(),
        }
    }
}

/// The network.
#[derive(Module, Debug)]
pub struct CrtNet {
    pub conv1: Conv1d,
    pub conv2: Conv1d,
    pub pool: MaxPool1d,
    pub gru: BiGru,
    pub attention: MultiHeadAttention,
    pub norm1: LayerNorm,
    pub ff1: Linear,
    pub ff2: Linear,
    pub norm2: LayerNorm,
    pub dense: Linear,
    pub head: Linear,
    pub relu: Relu,
}

impl CrtNet {
    /// Logits and the attention each step receives (mean over heads and
    /// queries) of `[batch, 1, samples]`.
    pub fn forward(&self, signal: Tensor<3>) -> (Tensor<2>, Tensor<2>) {
        let x = self
            .pool
            .forward(self.relu.forward(self.conv1.forward(signal)));
        let x = self.pool.forward(self.relu.forward(self.conv2.forward(x)));
        let (states, _) = self.gru.forward(x.swap_dims(1, 2), None); // [B, T, 2H]
        let mha = self.attention.forward(MhaInput::self_attn(states.clone()));
        let x = self.norm1.forward(states + mha.context);
        let f = self
            .ff2
            .forward(self.relu.forward(self.ff1.forward(x.clone())));
        let x = self.norm2.forward(x + f);
        let pooled: Tensor<2> = x.mean_dim(1).squeeze_dim(1);
        let h = self.relu.forward(self.dense.forward(pooled));
        let attention: Tensor<2> = mha.weights.mean_dim(1).mean_dim(2).squeeze_dims(&[1, 2]);
        (self.head.forward(h), attention)
    }
}

impl super::training::Classifier for CrtNet {
    fn output(&self, signal: Tensor<3>, _features: Option<Tensor<2>>) -> NetOutput {
        let (logits, attention) = self.forward(signal);
        NetOutput {
            logits,
            attention: Some(attention),
        }
    }

    fn freeze_backbone(mut self) -> Self {
        self.conv1 = self.conv1.no_grad();
        self.conv2 = self.conv2.no_grad();
        self.gru = self.gru.no_grad();
        self.attention = self.attention.no_grad();
        self.norm1 = self.norm1.no_grad();
        self.ff1 = self.ff1.no_grad();
        self.ff2 = self.ff2.no_grad();
        self.norm2 = self.norm2.no_grad();
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
    fn shapes() {
        let cfg = CrtNetConfig::new();
        let device = Device::flex();
        let net = cfg.init(&device);
        let (logits, attention) = net.forward(Tensor::<3>::zeros([2, 1, 187], &device));
        assert_eq!(logits.dims(), [2, 5]);
        assert_eq!(attention.dims(), [2, 46]);
    }
}
