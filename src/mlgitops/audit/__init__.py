"""Human audits of production predictions: a stratified sample of the prediction log with
known inclusion probabilities (`sample`), annotators' labels from Label Studio (`labels`,
`labelstudio`) and weighted estimates of precision, FPR and FNR (`estimate`, `report`)."""
