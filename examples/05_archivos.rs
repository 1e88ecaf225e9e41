//! Stage 5: files on the thread pool — the seed's `aiofiles` stories
//! (`examples/python/05_archivos.py`): §5.8.3 of tutorial 001 writes three
//! files at once with `gather` and reads them back; §5.9.3 writes one
//! inside `async with`; tutorial 000's `read_all_async` reads two with
//! `gather` and prints the list.
//!
//! `bucle::fs::File` is aiofiles' file object: each call runs on a worker
//! thread and suspends only its task. `async with ... as f:` is a scope
//! that owns `f`: the file closes when the scope ends.
//!
//! As in the Python original, the files go to a fresh temporary
//! directory, made the working directory, so the names print as in the
//! seed.

use bucle::fs::File;

// §5.8.3 ------------------------------------------------------------------

fn read_file(file_path: &str) {
    let mut f = File::open(file_path).unwrap();
    let mut contents = String::new();
    f.read_to_string(&mut contents).unwrap();
    println!("Contenido de {file_path}:\n{contents}\n");
}

fn write_file(file_path: &str, content: &str) {
    let mut f = File::create(file_path).unwrap();
    f.write_all(content.as_bytes()).unwrap();
    println!("Escribió en {file_path}");
}

fn main_5_8_3() {
    bucle::gather([
        bucle::spawn(|| write_file("file1.txt", "Contenido del archivo 1")),
        bucle::spawn(|| write_file("file2.txt", "Contenido del archivo 2")),
        bucle::spawn(|| write_file("file3.txt", "Contenido del archivo 3")),
    ])
    .unwrap();
    bucle::gather([
        bucle::spawn(|| read_file("file1.txt")),
        bucle::spawn(|| read_file("file2.txt")),
        bucle::spawn(|| read_file("file3.txt")),
    ])
    .unwrap();
}

// §5.9.3 ------------------------------------------------------------------

fn write_file_5_9_3(file_path: &str, content: &str) {
    {
        let mut f = File::create(file_path).unwrap();
        f.write_all(content.as_bytes()).unwrap();
    } // closed here: the end of `async with`
    println!("Escribió en {file_path}");
}

fn main_5_9_3() {
    write_file_5_9_3("output.txt", "¡Hola, asyncio!");
}

// Tutorial 000: read_all_async ---------------------------------------------

fn read_file_async(filepath: &str) -> String {
    let mut file = File::open(filepath).unwrap();
    let mut contents = String::new();
    file.read_to_string(&mut contents).unwrap();
    contents
}

fn read_all_async(filepaths: &[&'static str]) -> Vec<String> {
    let tasks = filepaths
        .iter()
        .map(|&filepath| bucle::spawn(move || read_file_async(filepath)));
    bucle::gather(tasks).unwrap()
}

fn main_leer() {
    let filepaths = ["file1.txt", "file2.txt"];
    let data = read_all_async(&filepaths);
    println!("{}", python_list(&data));
}

/// A list of strings as Python's `print` shows it: `['a', 'b']` (none of
/// these strings holds a quote or a backslash, which repr would escape).
fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

fn main() -> std::io::Result<()> {
    // §5.8.3's writers print as their writes end. With several worker
    // threads, the threads finish in any order and so would the lines
    // (CPython's do: aiofiles runs on asyncio's default executor, and on
    // most runs the lines came out in another order). With one worker, the
    // jobs run in the order they were handed over, the tasks resume in
    // gather's order, and the lines are the same on every run; the Python
    // original gives its loop a one-thread default executor for the same
    // reason.
    bucle::set_max_workers(1);

    let inicio = std::env::current_dir()?;
    let carpeta = std::env::temp_dir().join(format!("bucle-05_archivos-{}", std::process::id()));
    std::fs::create_dir_all(&carpeta)?;
    std::env::set_current_dir(&carpeta)?;

    bucle::run(main_5_8_3);
    bucle::run(main_5_9_3);
    bucle::run(main_leer);

    std::env::set_current_dir(inicio)?;
    std::fs::remove_dir_all(carpeta)
}
