"""The torch side shared by the stages: loading a base or a trained variant (`loading`,
`adapters`), prompts as the model reads them (`prompts`), generation (`generation`, `greedy`, `prefill`), evaluation of a model on a data
file (`evaluate`, `workers`), the training loop (`training`), perplexity, timing and memory
(`timing`, `memory`) and matrix-product FLOPs (`flops`). Stages import these; these import no
stage."""
