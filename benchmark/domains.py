"""Domain-adaptation datasets (digits_m, usps, svhn, mnist_m) and source→target pairs."""
