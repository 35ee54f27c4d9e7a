//! ContractNLI document-level metrics, as the ContractNLI paper computes them.
