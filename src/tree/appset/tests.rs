//! Table tests of the generators and templates, with Argo CD's documented
//! examples where they exist.
