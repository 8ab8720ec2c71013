//! What a trained model is to the rest of the system: its card (the JSON manifest
//! beside the `.onnx`) and the preprocessing the card declares. The server and the
//! trainer both prepare model input through [`preprocess::Preprocessing::prepare`],
//! so serving cannot drift from training.

pub mod card;
pub mod preprocess;

pub use card::ModelCard;
pub use preprocess::{BeatInputs, BeatWindow, Prepared, Preprocessing};
