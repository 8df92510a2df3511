"""The dataset: the embedded generator, materializing the data of data.dvc, appending labelled
batches, and reading and preparing the table for the stages."""
