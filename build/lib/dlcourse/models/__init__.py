"""Models: plain `torch.nn.Module`s. Every constructor takes `input_shape` and `num_outputs`
(filled in from the data module) plus its own options, and returns logits / raw outputs."""
