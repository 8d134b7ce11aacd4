//! Questions about types the expansions ask.

use syn::visit::Visit;

/// Does the type mention `impl Trait` anywhere (so it cannot be named in a turbofish)?
pub fn mentions_impl_trait(ty: &syn::Type) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}
